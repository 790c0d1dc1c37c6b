"""The commands as a user runs them: p2p-tracker and p2p-peer processes on loopback, real files."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, stop_processes, wait_for

BIN = Path(sys.executable).parent
MiB = 1 << 20


def big_file(path: Path, size: int, seed: str) -> str:
    """Write size pseudo-random bytes; return their sha256."""
    block = b"".join(hashlib.sha256(f"{seed}{i}".encode()).digest() for i in range(32768))  # 1 MiB
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for i in range(size // len(block) + 1):
            piece = block[: min(len(block), size - i * len(block))]
            if not piece:
                break
            piece = bytes([i % 256]) + piece[1:]
            f.write(piece)
            digest.update(piece)
    old = time.time() - 10
    os.utime(path, (old, old))
    return digest.hexdigest()


class Cluster:
    """A tracker process and peer processes; every process is stopped at the end."""

    def __init__(self, work: Path):
        self.work = work
        self.tracker = f"127.0.0.1:{free_port()}"
        self.env = dict(os.environ, P2P_TRACKER=self.tracker, P2P_PASSWORD="pw", P2P_LOG_LEVEL="info")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.shares: dict[str, Path] = {}
        self._start("tracker", [str(BIN / "p2p-tracker"), "--listen", self.tracker, "--db", str(work / "t.db")])
        self.wait_healthy(self.tracker)

    def _start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        with open(self.work / f"{name}.log", "wb") as log:  # the child keeps its own descriptor
            self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env or self.env)

    def wait_healthy(self, address: str) -> None:
        def healthy() -> bool:
            probe = subprocess.run([sys.executable, "-m", "p2p_common.healthcheck", "--address", address], capture_output=True)
            return probe.returncode == 0

        wait_for(healthy, timeout=30, interval=0.2, what=f"server at {address}")

    def serve(self, name: str, *extra: str, env: dict[str, str] | None = None, new_share: bool = False) -> Path:
        share = self.work / f"share-{name}"
        if not new_share:  # else left for serve to make
            share.mkdir(exist_ok=True)
        self.shares[name] = share
        address = f"127.0.0.1:{free_port()}"
        cmd = [
            str(BIN / "p2p-peer"),
            "--name",
            name,
            "serve",
            "--share",
            str(share),
            "--listen",
            address,
            "--rescan",
            "0.5",
            *extra,
        ]
        self._start(name, cmd, env)
        self.wait_healthy(address)
        return share

    def peer(
        self, *args: str, name: str = "user", env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(BIN / "p2p-peer"), "--name", name, *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env or self.env, timeout=timeout, cwd=self.work)

    def search(self, pattern: str = "") -> list[dict]:
        out = self.peer("search", pattern, "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def stop(self) -> None:
        stop_processes(self.procs.values())


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    c.stop()


def test_search_json_and_get_from_three_peers(cluster):
    digest = ""
    for name in ("p1", "p2", "p3"):
        share = cluster.serve(name)
        digest = big_file(share / "data" / "set.bin", 40 * MiB, "set")
        (share / f"{name}.txt").write_text(name)
    rows = wait_for(lambda: [r for r in cluster.search("set.bin") if len(r["peers"]) == 3], timeout=20, what="3 sources")
    assert rows[0]["name"] == "data/set.bin" and rows[0]["size"] == 40 * MiB and rows[0]["sha256"] == digest
    assert sorted(p["name"] for p in rows[0]["peers"]) == ["p1", "p2", "p3"]
    out = cluster.peer("get", "set.bin", "-o", "fetched.bin")
    assert out.returncode == 0, out.stderr
    assert hashlib.sha256((cluster.work / "fetched.bin").read_bytes()).hexdigest() == digest
    assert "\r" not in out.stderr  # not a terminal: no progress bar
    assert "p1:" in out.stdout and "p2:" in out.stdout and "p3:" in out.stdout
    table = cluster.peer("search", "txt")
    assert table.returncode == 0 and "NAME" in table.stdout and "p2.txt" in table.stdout


def test_get_killed_with_sigkill_resumes_fetching_only_the_rest(cluster):
    share = cluster.serve("src")
    digest = big_file(share / "huge.bin", 300 * MiB, "huge")
    wait_for(lambda: cluster.search("huge.bin"), timeout=30, what="huge.bin to be published")
    dest = cluster.work / "huge.bin"
    proc = subprocess.Popen(
        [str(BIN / "p2p-peer"), "--name", "user", "get", "huge.bin", "-o", str(dest)],
        env=cluster.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    have = list(cluster.work.glob(".huge.bin.*.p2p-have"))

    def some_chunks_written() -> bool:
        found = list(cluster.work.glob(".huge.bin.*.p2p-have"))
        have[:] = found
        return bool(found) and found[0].stat().st_size >= 4 * 20  # at least 20 chunks recorded

    wait_for(some_chunks_written, timeout=60, interval=0.01, what="part of the download")
    proc.kill()
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("the download finished before it could be killed")
    assert not dest.exists()
    out = cluster.peer("get", "huge.bin", "-o", str(dest))
    assert out.returncode == 0, out.stderr
    resumed = int(out.stdout.split("; ")[1].split(" already here")[0])
    assert resumed >= 20
    fetched = sum(int(part.split(":")[1]) for part in out.stdout.split("chunks from ")[1].split(";")[0].split(", "))
    assert fetched == 300 - resumed  # only what was missing crossed the network
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == digest
    assert not list(cluster.work.glob(".huge.bin.*"))


def test_put_and_its_refusal(cluster):
    inbox = cluster.serve("inbox", "--allow-uploads")
    cluster.serve("closed")
    local = cluster.work / "upload.dat"
    digest = big_file(local, 3 * MiB + 5, "up")
    out = cluster.peer("put", str(local), "--to", "inbox")
    assert out.returncode == 0, out.stderr
    assert hashlib.sha256((inbox / "upload.dat").read_bytes()).hexdigest() == digest
    refused = cluster.peer("put", str(local), "--to", "closed")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "does not accept uploads" in refused.stderr
    (cluster.work / ".env").write_text("SECRET=1")  # it would land in the share and never be shared
    hidden = cluster.peer("put", ".env", "--to", "inbox")
    assert hidden.returncode == 1 and not (inbox / ".env").exists()
    assert hidden.stderr == (
        "p2p-peer put: upload to inbox: this peer leaves '.env' out of its share (hidden): send it under another name"
        " (put --as) [PERMISSION_DENIED]\n"
    )
    renamed = cluster.peer("put", ".env", "--to", "inbox", "--as", "env.txt")
    assert renamed.returncode == 0 and (inbox / "env.txt").read_text() == "SECRET=1"


def test_put_of_standard_input(cluster):
    """`tar c dir | p2p-peer put - --as dir.tar --to PEER`: staged in TMPDIR (removed after), then sent."""
    inbox = cluster.serve("inbox", "--allow-uploads")
    tmp = cluster.work / "tmp"
    tmp.mkdir()
    data = (b"tar bytes " * 300_000)[: 2 * MiB + 7]
    cmd = [str(BIN / "p2p-peer"), "--name", "user", "put", "-", "--as", "backup.tar", "--to", "inbox"]
    env = dict(cluster.env, TMPDIR=str(tmp))
    out = subprocess.run(cmd, input=data, capture_output=True, env=env, timeout=60, cwd=cluster.work)
    assert out.returncode == 0, out.stderr
    assert (inbox / "backup.tar").read_bytes() == data and list(tmp.iterdir()) == []
    digest = hashlib.sha256(data).hexdigest()
    assert out.stdout.decode() == f"uploaded standard input to inbox as backup.tar: 2.0 MiB sha256 {digest}\n"
    unnamed = subprocess.run(cmd[:5] + cmd[7:], input=b"x", capture_output=True, text=False, env=env, timeout=60)
    assert unnamed.returncode == 1 and b"put - sends standard input as one file, named with --as" in unnamed.stderr


def test_hidden_and_excluded_files_are_not_published(cluster):
    """`serve --share ~`: ~/.ssh/id_rsa must not reach the directory; --exclude leaves out more."""
    share = cluster.work / "share-home"
    for name in (".ssh/id_rsa", "notes.txt", "draft.tmp", "cache/big.bin"):
        big_file(share / name, 10, name)
    env = dict(cluster.env, P2P_EXCLUDE="cache,*.tmp")
    cluster.serve("home", "--exclude", "*.tmp", env=env)  # the flag, not the variable
    log = cluster.work / "home.log"
    wait_for(lambda: "indexed 2 files" in log.read_text(), what="the share indexed")
    assert "(left out 2: hidden files and folders, '*.tmp')" in log.read_text()
    assert [r["name"] for r in cluster.search("")] == ["cache/big.bin", "notes.txt"]

    def listed(*flags: str) -> list[str]:
        out = cluster.peer("ls", "--share", str(share), *flags, env=env)
        assert out.returncode == 0, out.stderr
        return [line.split()[-1] for line in out.stdout.splitlines()]

    assert listed() == ["notes.txt"]
    assert listed("--share-hidden") == [".ssh/id_rsa", "notes.txt"]


def test_put_of_folders_and_several_files_and_one_that_fails(cluster):
    inbox = cluster.serve("inbox", "--allow-uploads")
    album = cluster.work / "album"
    digests = {name: big_file(album / name, size, name) for name, size in (("01.flac", 3 * MiB), ("disc2/02.flac", 5))}
    (cluster.work / "notes.txt").write_text("liner notes")
    out = cluster.peer("put", "album", "notes.txt", "--to", "inbox", "--as", "music")
    assert out.returncode == 0, out.stderr
    for name, digest in digests.items():
        assert hashlib.sha256((inbox / "music/album" / name).read_bytes()).hexdigest() == digest
    assert (inbox / "music/notes.txt").read_text() == "liner notes"
    assert out.stdout.count("uploaded ") == 3

    (cluster.work / "notes.txt").write_text("other notes")  # music/notes.txt there holds other bytes
    again = cluster.peer("put", "album", "notes.txt", "--to", "inbox", "--as", "music")
    assert again.returncode == 1 and "1 of 3 files failed" in again.stderr and "already exists" in again.stderr
    assert (inbox / "music/notes.txt").read_text() == "liner notes"  # nothing half-replaced
    assert "uploaded " not in again.stdout  # nothing resent, and said so
    for name, digest in digests.items():
        size = "3.0 MiB" if name == "01.flac" else "5 B"
        assert f"inbox already has album/{name} as music/album/{name}: {size} sha256 {digest}\n" in again.stdout


def test_a_folder_of_many_small_files_goes_several_at_once_and_is_published_in_batches(cluster):
    """2,000 photos took 17 s: one file after another, each landing walked the receiver's whole
    share and was published by a SendIndex of its own."""
    inbox = cluster.serve("inbox", "--allow-uploads")
    photos = cluster.work / "photos"
    digests = {f"{i // 20}/img{i:03d}.jpg": big_file(photos / f"{i // 20}/img{i:03d}.jpg", 1000 + i, str(i)) for i in range(60)}
    out = cluster.peer("put", "photos", "--to", "inbox", "--jobs", "4")
    assert out.returncode == 0 and out.stdout.count("uploaded ") == 60, out.stderr
    for name, digest in digests.items():
        assert hashlib.sha256((inbox / "photos" / name).read_bytes()).hexdigest() == digest
    wait_for(lambda: len(cluster.search("img")) == 60, timeout=20, what="the 60 photos published")
    publishes = (cluster.work / "tracker.log").read_text().count("/p2p.v1.TrackerService/SendIndex caller=inbox@")
    assert publishes <= 20, publishes  # the first, then batches (60 when each file went alone)

    def streams() -> int:
        return (cluster.work / "inbox.log").read_text().count("/p2p.v1.PeerService/Upload caller=")

    wait_for(lambda: streams() >= 1, timeout=10, what="the receiver's log of the Upload streams")
    assert streams() <= 4  # a stream a job, file after file on it (60 when each file had its own)


def test_errors_are_one_line_and_exit_1(cluster):
    cluster.serve("holder")
    (cluster.shares["holder"] / "exists.txt").write_text("x")
    cluster.peer("search", name="victim")  # registers the account with password pw
    wait_for(lambda: cluster.search("exists.txt"), timeout=20, what="exists.txt published")  # for the last case
    cases = [
        (cluster.peer("search", name="victim", env=dict(cluster.env, P2P_PASSWORD="nope")), "wrong password"),
        (cluster.peer("search", env=dict(cluster.env, P2P_TRACKER=f"127.0.0.1:{free_port()}")), "unreachable"),
        (cluster.peer("get", "no-such-file.txt"), "no file named"),
        (cluster.peer("search", "f["), "p2p-peer search: query at the tracker: name_pattern has a '[' that no ']' closes"),
        (cluster.peer("get", "0" * 64), "no live peer"),
        (cluster.peer("put", str(cluster.work / "missing.bin"), "--to", "holder"), "no such file or folder"),
        (cluster.peer("search", env={k: v for k, v in cluster.env.items() if k != "P2P_PASSWORD"}), "password is needed"),
        (cluster.peer("serve", "--share", str(cluster.work / "tracker.log"), "--listen", "127.0.0.1:0"), "is a file; share"),
        (cluster.peer("get", "exists.txt", "-o", str(cluster.work / "tracker.log" / "x.txt")), "Not a directory: "),
    ]
    for out, fragment in cases:
        assert out.returncode == 1, out
        assert fragment in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr


def test_the_password_comes_from_a_file_or_the_terminal(cluster):
    """Not on the command line, where `ps` and the shell's history show it: a Docker or systemd
    secret's file, or asked for on the terminal as ssh does."""
    no_password = {k: v for k, v in cluster.env.items() if k != "P2P_PASSWORD"}
    secret = cluster.work / "secret"
    secret.write_text("pw\n")
    cluster.peer("search", name="owner")  # registers the account with password pw
    out = cluster.peer("search", "--password-file", str(secret), name="owner", env=no_password)
    assert out.returncode == 0 and out.stdout == "no matches\n", out.stderr
    secret.write_text("other\n")
    out = cluster.peer("search", name="owner", env=dict(no_password, P2P_PASSWORD_FILE=str(secret)))
    assert out.returncode == 1 and "wrong password" in out.stderr

    primary, secondary = os.openpty()
    cmd = [str(BIN / "p2p-peer"), "--name", "owner", "search"]

    def own_terminal() -> None:  # the pty becomes the command's controlling terminal, which getpass reads
        import fcntl
        import termios

        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    with subprocess.Popen(
        cmd, stdin=secondary, stdout=secondary, stderr=secondary, env=no_password, start_new_session=True, preexec_fn=own_terminal
    ) as proc:
        os.close(secondary)
        seen = b""
        while b"password for owner: " not in seen:
            seen += os.read(primary, 1024)
        os.write(primary, b"pw\n")
        assert proc.wait(timeout=30) == 0
        with contextlib.suppress(OSError):  # EIO once the command has closed the terminal
            while chunk := os.read(primary, 1024):
                seen += chunk
    os.close(primary)
    assert b"no matches" in seen and b"pw" not in seen.split(b"password for owner: ", 1)[1]  # not echoed


def test_sigterm_logs_out_at_once(cluster):
    share = cluster.serve("leaving")
    (share / "bye.txt").write_text("bye")
    wait_for(lambda: cluster.search("bye.txt"), timeout=20, what="bye.txt to be published")
    proc = cluster.procs["leaving"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert cluster.search("bye.txt") == []


def test_a_sigterm_taken_by_any_thread_stops_serve_and_the_tracker(cluster):
    """The kernel may hand a process's signal to any of its threads (to a gRPC one, often, right
    after a SIGCONT); `serve` and the tracker slept through it then, and never stopped."""
    cluster.serve("stopped")
    for proc in (cluster.procs["stopped"], cluster.procs["tracker"]):
        sigterm_to_another_thread(proc.pid)
        assert proc.wait(timeout=15) == 0


def sigterm_to_another_thread(pid: int) -> None:
    """SIGTERM as the kernel may deliver a process's signal: to one of its Python threads other than
    the main one (tgkill)."""
    comm = Path(f"/proc/{pid}/comm").read_text()
    workers = [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
    python_thread = next(t for t in workers if Path(f"/proc/{pid}/task/{t}/comm").read_text() == comm)
    assert ctypes.CDLL(None, use_errno=True).tgkill(pid, python_thread, signal.SIGTERM) == 0


def test_tracker_user_commands(tmp_path):
    db = str(tmp_path / "users.db")
    tracker = [str(BIN / "p2p-tracker"), "--db", db]
    mistyped = subprocess.run([*tracker, "user", "list"], capture_output=True, text=True)  # makes no database
    assert mistyped.returncode == 1 and mistyped.stderr.startswith(f"p2p-tracker: no database at {db} "), mistyped.stderr
    assert not os.path.exists(db)
    added = subprocess.run([*tracker, "user", "add", "carol", "--password", "pw"], capture_output=True, text=True)
    assert added.returncode == 0 and "created" in added.stdout
    assert added.stderr == f"p2p-tracker: {db} did not exist: made a new database there\n"
    again = subprocess.run([*tracker, "user", "add", "carol", "--password", "pw"], capture_output=True, text=True)
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
    listed = subprocess.run([*tracker, "user", "list"], capture_output=True, text=True)
    assert listed.stdout.split() == ["carol"]
    removed = subprocess.run([*tracker, "user", "del", "nobody"], capture_output=True, text=True)
    assert removed.returncode == 1 and "no account" in removed.stderr
    for command, said in (("disable", "account carol disabled"), ("enable", "account carol enabled")):
        done = subprocess.run([*tracker, "user", command, "carol"], capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout == f"{said}\n", done
    missing = subprocess.run([*tracker, "user", "disable", "nobody"], capture_output=True, text=True)
    assert missing.returncode == 1 and missing.stderr == "p2p-tracker: no account 'nobody'\n"


def test_tracker_user_commands_take_a_piped_or_filed_password(cluster):
    """`user add` reads a piped line and `user passwd` a secret's file, as the peer's --password-file
    does, CRLF line ends included: a password piped from a Windows-saved file once kept its "\r", so
    the peer reading that same file could never log in."""
    tracker = [str(BIN / "p2p-tracker"), "--db", str(cluster.work / "t.db"), "user"]
    added = subprocess.run([*tracker, "add", "frank"], input="pw\r\n", capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    no_password = {k: v for k, v in cluster.env.items() if k != "P2P_PASSWORD"}
    assert cluster.peer("search", name="frank", env=dict(no_password, P2P_PASSWORD="pw")).returncode == 0
    secret = cluster.work / "frank.secret"
    secret.write_bytes(b"new\r\nignored\n")
    changed = subprocess.run([*tracker, "passwd", "frank", "--password-file", str(secret)], capture_output=True, text=True)
    assert changed.returncode == 0, changed.stderr
    out = cluster.peer("search", "--password-file", str(secret), name="frank", env=no_password)
    assert out.returncode == 0 and out.stdout == "no matches\n", out.stderr
    old = cluster.peer("search", name="frank", env=dict(no_password, P2P_PASSWORD="pw"))
    assert old.returncode == 1 and "wrong password" in old.stderr
    unreadable = subprocess.run(
        [*tracker, "passwd", "frank", "--password-file", str(cluster.work / "absent")], capture_output=True, text=True
    )
    assert unreadable.returncode == 1 and unreadable.stderr.count("\n") == 1
    assert "cannot read the password file" in unreadable.stderr and "absent" in unreadable.stderr


def test_a_disabled_account_is_kept_out_while_its_peer_serves(cluster):
    """`user del` under open registration let the peer register the name again at its next login."""
    share = cluster.serve("mallory")
    (share / "junk.txt").write_text("junk")
    wait_for(lambda: cluster.search("junk"), timeout=20, what="junk.txt published")
    tracker = [str(BIN / "p2p-tracker"), "--db", str(cluster.work / "t.db"), "user"]
    serving = subprocess.run([*tracker, "list"], capture_output=True, text=True).stdout.splitlines()
    assert re.fullmatch(r"mallory  \(serving from 127\.0\.0\.1:\d+\)", serving[0]) and serving[1:] == ["user"], serving
    done = subprocess.run([*tracker, "disable", "mallory"], capture_output=True, text=True)  # beside the running tracker
    assert done.stdout == "account mallory disabled; 1 session of it ended\n", done
    assert cluster.search("junk") == []
    listed = subprocess.run([*tracker, "list"], capture_output=True, text=True).stdout
    assert listed.splitlines() == ["mallory  (disabled)", "user"]
    refused = "account 'mallory' is disabled by the tracker's operator [PERMISSION_DENIED]"
    (share / "more.txt").write_text("more")  # its publish, sooner than its next heartbeat, meets the refusal
    wait_for(lambda: refused in (cluster.work / "mallory.log").read_text(), timeout=30, what="the serving peer refused")
    out = cluster.peer("search", name="mallory")
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and refused in out.stderr, out.stderr
    (elsewhere := cluster.work / "elsewhere").mkdir()
    serve = cluster.peer("serve", "--share", str(elsewhere), "--listen", "127.0.0.1:0", name="mallory")
    assert serve.returncode == 1 and refused in serve.stderr and serve.stderr.count("\n") == 1, serve.stderr
    assert subprocess.run([*tracker, "enable", "mallory"], capture_output=True, text=True).returncode == 0
    assert cluster.peer("search", name="mallory").returncode == 0


def test_one_tracker_per_database_and_accounts_are_managed_beside_it(start_tracker_at, tmp_path):
    """A second tracker on a served database is refused (they would reap and index each other's
    sessions, and a newer one would upgrade the schema under the older); `user add` is not."""
    from tests.helpers import TrackerClientForTests

    serving = start_tracker_at()  # holds tracker.db in this process
    db = str(tmp_path / "tracker.db")
    second = subprocess.run(
        [str(BIN / "p2p-tracker"), "--db", db, "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=30
    )
    assert second.returncode == 1 and second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    assert f"already served by another p2p-tracker (pid {os.getpid()}); one tracker per database" in second.stderr
    added = subprocess.run(
        [str(BIN / "p2p-tracker"), "user", "add", "erin", "--password", "pw", "--db", db], capture_output=True, text=True
    )
    assert added.returncode == 0, added.stderr
    c = TrackerClientForTests(f"127.0.0.1:{serving.port}")
    try:
        assert c.login("erin", "pw").registered is False  # the running tracker knows her
    finally:
        c.close()
    serving.stop(grace=0)  # and once it stops, another may serve the database
    after = subprocess.Popen([str(BIN / "p2p-tracker"), "--db", db, "--listen", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
    try:
        assert after.stderr is not None
        lines = [after.stderr.readline() for _ in range(2)]  # "N sessions ... carry on", then this
        assert any("tracker serving on port" in line for line in lines), lines
    finally:
        after.terminate()
        after.communicate(timeout=15)  # and its stderr closed


def test_a_tracker_database_that_cannot_be_used_is_one_line_naming_the_fix(tmp_path):
    """A folder, a file of something else (left as it was), a path under a file: exit 1 and a line
    saying what to give instead, for serving and for the account commands alike."""
    (tmp_path / "folder").mkdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    cases = [
        (tmp_path / "folder", "is a folder; give a file path, such as"),
        (notes, "is not a tracker database"),
        (notes / "t.db", "cannot create the folder of the database"),
    ]
    for db, fragment in cases:
        for command in (["--listen", "127.0.0.1:0"], ["user", "add", "probe", "--password", "pw"]):
            cmd = [str(BIN / "p2p-tracker"), "--db", str(db), *command]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)  # a tracker that serves fails here
            assert out.returncode == 1, out
            assert fragment in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert notes.read_text() == "not a database\n" and sorted(p.name for p in tmp_path.iterdir()) == ["folder", "notes.txt"]


def test_serve_with_a_wrong_password_exits_with_one_line(cluster):
    cluster.peer("search", name="owner")  # registers 'owner' with password pw
    env = dict(cluster.env, P2P_PASSWORD="wrong")
    cmd = ["serve", "--share", str(cluster.work / "s"), "--listen", f"127.0.0.1:{free_port()}"]
    out = cluster.peer(*cmd, name="owner", env=env, timeout=60)
    assert out.returncode == 1 and "wrong password" in out.stderr and "Traceback" not in out.stderr


def test_tracker_passwd_changes_the_password(tmp_path):
    db = str(tmp_path / "users.db")
    tracker = [str(BIN / "p2p-tracker"), "--db", db]
    subprocess.run([*tracker, "user", "add", "dan", "--password", "old"], check=True, capture_output=True)
    changed = subprocess.run([*tracker, "user", "passwd", "dan", "--password", "new"], capture_output=True, text=True)
    assert changed.returncode == 0 and "changed" in changed.stdout
    missing = subprocess.run([*tracker, "user", "passwd", "nobody", "--password", "x"], capture_output=True, text=True)
    assert missing.returncode == 1 and "no account" in missing.stderr and "Traceback" not in missing.stderr
    from tracker.auth import check_password
    from tracker.sqlite_store import SqliteStore

    store = SqliteStore(db)
    try:
        account = store.account("dan")
        assert account is not None and check_password("new", account.password_hash)
    finally:
        store.close()


def test_serve_says_its_serve_rate_and_where_it_is_listed(cluster):
    """The start-up line says the cap and the listed address; if the first login did not get
    through (a slow machine), the line comes without it and the log says it once a login does."""
    share = cluster.serve("capped", "--max-serve-rate", "20M", new_share=True)
    log = cluster.work / "capped.log"
    line = re.compile(
        rf"serving {re.escape(str(share))} \(a new folder: it did not exist\) on port \d+ as capped, at most 20\.0 MiB/s"
        r"(, listed as 127\.0\.0\.1:\d+)? \(indexing it in the background\)"
    )
    listed = re.compile(r"listed as 127\.0\.0\.1:\d+ \(indexing|the tracker lists this peer as 127\.0\.0\.1:\d+")
    try:
        wait_for(lambda: line.search(log.read_text()), timeout=10, what="the serve line")
        wait_for(lambda: listed.search(log.read_text()), timeout=30, what="where it is listed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the log:\n{log.read_text()}") from None


def test_serve_started_before_its_tracker_serves_and_says_when_the_tracker_answers(cluster):
    """Peers started before the tracker (a host's services in any order) serve at once, log in
    when the tracker comes up, and say so at the default log level, as they said the failures."""
    tracker = f"127.0.0.1:{free_port()}"
    env = dict(cluster.env, P2P_TRACKER=tracker, P2P_LOG_LEVEL="warning")
    cluster.serve("early", env=env)  # healthy without a tracker: it serves what it shares
    log = cluster.work / "early.log"
    wait_for(lambda: "serving anyway and retrying" in log.read_text(), timeout=10, what="the first login's warning")
    cluster._start("late-tracker", [str(BIN / "p2p-tracker"), "--listen", tracker, "--db", str(cluster.work / "late.db")])
    back = re.compile(
        r"the tracker at 127\.0\.0\.1:\d+ answers after \d+ failed tr(y|ies); listed as 127\.0\.0\.1:\d+, \d+ files? published"
    )
    wait_for(lambda: back.search(log.read_text()), timeout=40, interval=0.2, what="the serve log to say the tracker answers")
    (cluster.shares["early"] / "early.txt").write_text("up before the tracker")

    def listed() -> list[tuple[str, list[str]]]:
        found = cluster.peer("search", "early.txt", "--json", env=env)
        assert found.returncode == 0, found.stderr
        return [(r["name"], [p["name"] for p in r["peers"]]) for r in json.loads(found.stdout)]

    wait_for(lambda: listed() == [("early.txt", ["early"])], timeout=20, interval=0.2, what="its share listed")


def test_get_destinations_sha256_digits_and_search_limits(cluster):
    share = cluster.serve("src")
    for i in range(4):
        (share / f"item{i}.txt").write_text(f"item {i}")
    wait_for(lambda: len(cluster.search("item")) == 4, timeout=20, what="4 items published")
    digest = hashlib.sha256(b"item 1").hexdigest()
    work = cluster.work

    out = cluster.peer("get", digest[:12], "-o", "new/dir/")  # the digits search shows; a dir by its slash
    assert out.returncode == 0, out.stderr
    assert (work / "new" / "dir" / "item1.txt").read_text() == "item 1"
    (work / "existing").mkdir()
    assert cluster.peer("get", "item1.txt", "-o", "existing").returncode == 0
    assert (work / "existing" / "item1.txt").read_text() == "item 1"

    (work / "mine.txt").write_text("my own notes")  # never destroyed without --force
    refused = cluster.peer("get", "item1.txt", "-o", "mine.txt")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "already exists" in refused.stderr
    assert (work / "mine.txt").read_text() == "my own notes"
    assert cluster.peer("get", "item1.txt", "-o", "mine.txt", "--force").returncode == 0
    assert (work / "mine.txt").read_text() == "item 1"
    unwritable = cluster.peer("get", "item2.txt", "-o", "/proc/p2p-item2.txt")  # refused even to root
    assert unwritable.returncode == 1 and unwritable.stderr.count("\n") == 1, unwritable.stderr
    assert "/proc/p2p-item2.txt" in unwritable.stderr and "p2p-part" not in unwritable.stderr  # what the user named

    table = cluster.peer("search", "item")  # the tracker pages in sha256 order; the table is by name
    assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == [f"item{i}.txt" for i in range(4)]
    limited = cluster.peer("search", "item", "--limit", "2", "--json")
    assert limited.returncode == 0 and len(json.loads(limited.stdout)) == 2 and "the first 2 matches" in limited.stderr
    by_digits = cluster.peer("search", "--sha256", digest[:10], "--json")
    assert [row["name"] for row in json.loads(by_digits.stdout)] == ["item1.txt"]
    short = cluster.peer("search", "--sha256", digest[:5])
    assert short.returncode == 1 and "8 or more" in short.stderr and short.stderr.count("\n") == 1


def test_a_closed_pipe_ends_search_quietly(cluster):
    """`p2p-peer search | head`: the reader went away; like any Unix tool, exit on SIGPIPE's status, say nothing."""
    cmd = [str(BIN / "p2p-peer"), "--name", "user", "search", "--json"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cluster.env, cwd=cluster.work) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # long before the command, which imports grpc and logs in first, prints anything
        assert proc.wait(timeout=60) == 128 + signal.SIGPIPE
        assert proc.stderr.read() == b""


def test_get_to_standard_output_streams_the_verified_file_in_order(cluster):
    """`get NAME -o - | tar x`: chunks from two sources arrive in any order; the pipe gets the file
    in order. Nothing is left in TMPDIR, nothing named '-' appears, and a reader that leaves (`|
    head`) ends the download quietly with SIGPIPE's status."""
    digest = ""
    for name in ("p1", "p2"):  # capped, so that neither can send all 13 chunks before the other starts
        digest = big_file(cluster.serve(name, "--max-serve-rate", "8M") / "set.bin", 12 * MiB + 5, "set")
    wait_for(lambda: [r for r in cluster.search("set.bin") if len(r["peers"]) == 2], timeout=20, what="2 sources")
    tmp = cluster.work / "tmp"
    tmp.mkdir()
    env = dict(cluster.env, TMPDIR=str(tmp))
    cmd = [str(BIN / "p2p-peer"), "--name", "user", "get", "set.bin", "-o", "-"]
    out = subprocess.run(cmd, capture_output=True, env=env, timeout=120, cwd=cluster.work)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout) == 12 * MiB + 5 and hashlib.sha256(out.stdout).hexdigest() == digest
    assert re.search(rb"^standard output: 12.0 MiB sha256 \w+ verified \(chunks from p1:\d+, p2:\d+\)$", out.stderr, re.M)
    assert list(tmp.iterdir()) == [] and not (cluster.work / "-").exists()

    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cluster.work) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(100_000) == (cluster.shares["p1"] / "set.bin").read_bytes()[:100_000]
        proc.stdout.close()
        assert proc.wait(timeout=60) == 128 + signal.SIGPIPE
        assert proc.stderr.read() == b""
    assert list(tmp.iterdir()) == []

    two = subprocess.run([*cmd[:5], "p1.txt", "-o", "-"], capture_output=True, text=True, env=env, timeout=60, cwd=cluster.work)
    assert two.returncode == 1 and two.stderr == "p2p-peer get: -o - writes one file to standard output, not 2\n"
    primary, secondary = os.openpty()  # a terminal as standard output: refused, as curl does
    try:
        tty = subprocess.run(cmd, stdout=secondary, stderr=subprocess.PIPE, text=True, env=env, timeout=60, cwd=cluster.work)
    finally:
        os.close(primary)
        os.close(secondary)
    assert tty.returncode == 1 and "not writing a file to the terminal" in tty.stderr


def test_get_all_of_a_folder_writes_each_of_its_identical_files(cluster):
    """One content is one match: a project's empty __init__.py files (or two copies of a licence)
    came back as one of them."""
    share = cluster.serve("dev")
    files = {"proj/pkg/__init__.py": "", "proj/pkg/sub/__init__.py": "", "proj/LICENSE": "MIT", "proj/docs/LICENSE": "MIT"}
    files |= {"proj/pkg/mod.py": "x = 1", "other/__init__.py": "", "other/LICENSE": "MIT"}
    for name, text in files.items():
        (share / name).parent.mkdir(parents=True, exist_ok=True)
        (share / name).write_text(text)
    wait_for(lambda: len(cluster.search("proj/*")) == 3, timeout=20, what="the project published")
    out = cluster.peer("get", "--all", "proj/*", "-o", "copy")
    assert out.returncode == 0, out.stderr
    root = cluster.work / "copy"
    got = {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}
    assert got == {name: text for name, text in files.items() if name.startswith("proj/")}
    assert "copy/proj/pkg/__init__.py: 0 B sha256" in out.stdout and "up to date" not in out.stdout  # written, not found there
    again = cluster.peer("get", "--all", "proj/*", "-o", "copy")
    assert again.returncode == 0 and again.stdout.count("already up to date") == 5, again.stdout


def test_get_several_files_and_every_match_of_a_pattern(cluster):
    share = cluster.serve("src")
    files = {"album/01.mp3": "one", "album/02.mp3": "two", "album/cover.jpg": "front", "other/cover.jpg": "back"}
    files["loose.txt"] = "loose"
    for name, text in files.items():
        (share / name).parent.mkdir(parents=True, exist_ok=True)
        (share / name).write_text(text)
    wait_for(lambda: len(cluster.search()) == 5, timeout=20, what="5 files published")
    work = cluster.work

    out = cluster.peer("get", "--all", "album/*", "-o", "music")
    assert out.returncode == 0, out.stderr
    got = {p.relative_to(work / "music").as_posix(): p.read_text() for p in (work / "music").rglob("*") if p.is_file()}
    assert got == {name: text for name, text in files.items() if name.startswith("album/")}

    out = cluster.peer("get", "--all", "cover.jpg", "-o", "covers")  # same base name: each keeps its folder
    assert out.returncode == 0, out.stderr
    assert (work / "covers/album/cover.jpg").read_text() == "front" and (work / "covers/other/cover.jpg").read_text() == "back"

    ambiguous = cluster.peer("get", "cover.jpg")
    assert ambiguous.returncode == 1 and "2 files match" in ambiguous.stderr and "--all" in ambiguous.stderr

    out = cluster.peer("get", "loose.txt", "01.mp3", "-o", "two")  # several names: -o is a directory
    assert out.returncode == 0, out.stderr
    assert (work / "two/loose.txt").read_text() == "loose" and (work / "two/01.mp3").read_text() == "one"

    typo = cluster.peer("get", "loose.txt", "missing.txt", "-o", "three")  # resolved before any byte moves
    assert typo.returncode == 1 and "no file named 'missing.txt'" in typo.stderr and not (work / "three").exists()

    clash = cluster.peer("get", "album/cover.jpg", "other/cover.jpg", "-o", "clash")
    assert clash.returncode == 1 and "two different files would be written to" in clash.stderr

    (work / "four").mkdir()
    (work / "four/loose.txt").write_text("mine")
    partly = cluster.peer("get", "loose.txt", "01.mp3", "-o", "four")  # one fails, the other still comes
    assert partly.returncode == 1 and "already exists" in partly.stderr and "1 of 2 files failed" in partly.stderr
    assert (work / "four/loose.txt").read_text() == "mine" and (work / "four/01.mp3").read_text() == "one"


def test_several_files_come_at_once_and_an_interrupted_batch_resumes(cluster):
    """A `get` of several files fetches --jobs (4) of them at once: here two, each from its own
    slow peer. Ctrl-C stops both, keeping their verified chunks; a rerun fetches only the rest."""
    digests = {}
    for name in ("north", "south"):
        share = cluster.serve(name, "--max-serve-rate", "4M")
        digests[name] = big_file(share / f"{name}.bin", 24 * MiB, name)
    wait_for(lambda: len(cluster.search(".bin")) == 2, timeout=30, what="both files published")
    into = cluster.work / "both"
    cmd = [str(BIN / "p2p-peer"), "--name", "user", "get", "north.bin", "south.bin", "-o", str(into)]
    proc = subprocess.Popen(cmd, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def chunks_recorded(name: str) -> int:
        return sum(p.stat().st_size // 4 for p in into.glob(f".{name}.bin.*.p2p-have"))

    wait_for(lambda: all(chunks_recorded(name) >= 2 for name in digests), timeout=60, what="both files coming at once")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "p2p-peer get: interrupted" and "Traceback" not in err
    assert not (into / "north.bin").exists() and not (into / "south.bin").exists()
    kept = {name: chunks_recorded(name) for name in digests}
    assert all(2 <= n < 24 for n in kept.values())

    rerun = cluster.peer("get", "north.bin", "south.bin", "-o", str(into))
    assert rerun.returncode == 0, rerun.stderr
    for name, digest in digests.items():
        assert hashlib.sha256((into / f"{name}.bin").read_bytes()).hexdigest() == digest
        line = next(line for line in rerun.stdout.splitlines() if line.startswith(str(into / f"{name}.bin")))
        assert f"{name}:{24 - kept[name]}; {kept[name]} already here" in line  # only the rest crossed the network


def test_ctrl_c_stops_a_batch_of_small_files_at_once(cluster):
    """Small files share one stream a source (peer/small_files.py). Ctrl-C while it waited on a
    slow peer's next file waited for that file (up to 10 s), not for the user."""
    share = cluster.serve("trickle", "--max-serve-rate", "64K")  # 16 s a file
    for i in range(8):
        (share / f"notes/{i}.txt").parent.mkdir(exist_ok=True)
        (share / f"notes/{i}.txt").write_bytes(os.urandom(MiB))  # one chunk
    wait_for(lambda: len(cluster.search("notes/")) == 8, timeout=30, what="the notes published")
    into = cluster.work / "notes-copy"
    cmd = [str(BIN / "p2p-peer"), "--name", "user", "get", "--all", "notes/*", "-o", str(into) + "/"]
    proc = subprocess.Popen(cmd, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def streaming() -> bool:
        status = json.loads(cluster.peer("status", "trickle", "--json").stdout)
        return status[0]["transfers_active"] == 1

    wait_for(streaming, timeout=30, what="the notes coming")
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - started < 5, (proc.returncode, err)
    assert err.strip().splitlines()[-1] == "p2p-peer get: interrupted" and "Traceback" not in err
    assert not [p for p in into.rglob("*") if p.is_file()]  # nothing half-written, nothing staged


def test_a_get_stopped_by_sigterm_logs_out_and_keeps_its_chunks(cluster):
    """`timeout 60 p2p-peer get ...`, a service manager: SIGTERM stops a command as Ctrl-C does (it
    killed it where it stood: no line, and its session listed on until its lease ran out)."""
    share = cluster.serve("slowpoke", "--max-serve-rate", "2M")
    big_file(share / "big.bin", 16 * MiB, "big")
    wait_for(lambda: cluster.search("big.bin"), timeout=30, what="big.bin to be published")
    dest = cluster.work / "big.bin"
    cmd = [str(BIN / "p2p-peer"), "--name", "quitter", "get", "big.bin", "-o", str(dest)]
    proc = subprocess.Popen(cmd, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def have() -> int:
        return sum(p.stat().st_size // 4 for p in cluster.work.glob(".big.bin.*.p2p-have"))

    wait_for(lambda: have() >= 2, timeout=60, what="chunks coming in")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM and err == "p2p-peer get: stopped (SIGTERM)\n", (proc.returncode, err)
    assert not dest.exists() and 2 <= have() < 16
    assert "logout quitter" in (cluster.work / "tracker.log").read_text()


def test_a_get_of_several_files_stops_at_a_sigterm_any_of_its_threads_takes(cluster):
    """Waiting for the next file to end, the main thread slept through a SIGTERM the kernel gave
    another thread (Python runs handlers in the main thread only): the command went on for minutes."""
    share = cluster.serve("slowpoke", "--max-serve-rate", "1M")
    for name in ("one", "two"):
        big_file(share / f"{name}.bin", 16 * MiB, name)
    wait_for(lambda: len(cluster.search(".bin")) == 2, timeout=30, what="both files to be published")
    cmd = [str(BIN / "p2p-peer"), "--name", "quitter", "get", "one.bin", "two.bin", "-o", str(cluster.work / "got") + "/"]
    proc = subprocess.Popen(cmd, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: list(cluster.work.glob("got/.*.p2p-have")), timeout=60, what="chunks coming in")
    sigterm_to_another_thread(proc.pid)
    _, err = proc.communicate(timeout=10)  # the files need 30 s more
    assert proc.returncode == 128 + signal.SIGTERM and err.endswith("p2p-peer get: stopped (SIGTERM)\n"), (proc.returncode, err)


def test_a_get_waiting_for_a_manifest_stops_at_a_sigterm_any_of_its_threads_takes(cluster):
    """The same while the only source, frozen, owes the file's chunk list (waited for up to the
    stall timeout, in one sleep)."""
    share = cluster.serve("frozen")
    big_file(share / "two.bin", 2 * MiB, "two")  # two chunks: the chunk list is asked of the peer
    [found] = wait_for(lambda: cluster.search("two.bin"), timeout=30, what="two.bin to be published")
    port = int(found["peers"][0]["address"].rsplit(":", 1)[1])
    cluster.procs["frozen"].send_signal(signal.SIGSTOP)  # its kernel still accepts the connection
    try:
        cmd = [str(BIN / "p2p-peer"), "--name", "quitter", "get", "two.bin", "-o", str(cluster.work / "two.bin")]
        proc = subprocess.Popen(cmd, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def connected() -> bool:  # the chunk list is asked as soon as the connection is up
            rows = [r for t in ("tcp", "tcp6") for r in Path(f"/proc/net/{t}").read_text().splitlines()[1:]]
            return any(r.split()[2].endswith(f":{port:04X}") and r.split()[3] == "01" for r in rows)  # ESTABLISHED

        wait_for(connected, timeout=30, interval=0.01, what="the get to dial the frozen peer")
        sigterm_to_another_thread(proc.pid)
        _, err = proc.communicate(timeout=10)  # the chunk list is waited for 60 s
    finally:
        cluster.procs["frozen"].send_signal(signal.SIGCONT)
    assert proc.returncode == 128 + signal.SIGTERM and err.endswith("p2p-peer get: stopped (SIGTERM)\n"), (proc.returncode, err)


def test_a_source_that_freezes_is_cut_off_and_the_get_resumes_later(cluster):
    """SIGSTOP: the peer's sockets stay open and silent, as a peer asleep or cut off without a reset."""
    share = cluster.serve("sleepy", "--max-serve-rate", "8M")  # slow enough to be caught mid-way
    digest = big_file(share / "slow.bin", 40 * MiB, "slow")
    wait_for(lambda: cluster.search("slow.bin"), timeout=30, what="slow.bin to be published")
    dest = cluster.work / "slow.bin"
    cmd = [str(BIN / "p2p-peer"), "--name", "user", "get", "slow.bin", "-o", str(dest), "--stall-timeout", "2"]
    env = dict(cluster.env, P2P_LOG_LEVEL="warning")  # as users run it
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        wait_for(
            lambda: any(p.stat().st_size >= 4 * 5 for p in cluster.work.glob(".slow.bin.*.p2p-have")),
            timeout=60,
            interval=0.01,
            what="5 chunks written",
        )
        sleepy = cluster.procs["sleepy"]
        sleepy.send_signal(signal.SIGSTOP)
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            sleepy.send_signal(signal.SIGCONT)
    assert proc.returncode == 1, out + err
    assert "sleepy" in err and "sent nothing for 2 s" in err and err.count("\n") == 1, err
    assert not dest.exists()
    again = cluster.peer("get", "slow.bin", "-o", str(dest))
    assert again.returncode == 0, again.stderr
    assert int(again.stdout.split("; ")[1].split(" already here")[0]) >= 5
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == digest


def test_a_get_stopped_and_continued_later_completes(cluster):
    """Ctrl-Z, `fg` minutes later (SIGSTOP/SIGCONT here): the pause is this process's, not its
    sources' silence. It failed with 'seed: sent nothing for 60 s' once resumed after a minute."""
    share = cluster.serve("steady", "--max-serve-rate", "8M")  # slow enough to be caught mid-way
    digest = big_file(share / "paused.bin", 24 * MiB, "paused")
    wait_for(lambda: cluster.search("paused.bin"), timeout=30, what="paused.bin to be published")
    dest = cluster.work / "paused.bin"
    cmd = [str(BIN / "p2p-peer"), "--name", "user", "get", "paused.bin", "-o", str(dest), "--stall-timeout", "2"]
    with subprocess.Popen(cmd, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        wait_for(
            lambda: any(p.stat().st_size >= 4 * 5 for p in cluster.work.glob(".paused.bin.*.p2p-have")),
            timeout=60,
            interval=0.01,
            what="5 chunks written",
        )
        proc.send_signal(signal.SIGSTOP)
        time.sleep(3.5)  # the pause under test: longer than the stall timeout
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert "chunks from steady:24" in out and "dropped" not in out + err, out + err
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == digest


def test_a_put_stopped_and_continued_later_completes(cluster):
    """The same for an upload: its stall watchdog left out the time the sender was stopped."""
    inbox = cluster.serve("inbox", "--allow-uploads")
    local = cluster.work / "later.dat"
    digest = big_file(local, 16 * MiB, "later")
    put = ["put", str(local), "--to", "inbox", "--stall-timeout", "2", "--max-rate", "8M"]  # caught mid-way
    cmd = [str(BIN / "p2p-peer"), "--name", "user", *put]
    with subprocess.Popen(cmd, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        wait_for(lambda: list(inbox.rglob("*later.dat*")), timeout=60, interval=0.01, what="the upload to start")
        proc.send_signal(signal.SIGSTOP)
        time.sleep(3.5)
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert hashlib.sha256((inbox / "later.dat").read_bytes()).hexdigest() == digest


def test_put_to_a_frozen_receiver_stops_and_a_rerun_completes_it(cluster):
    inbox = cluster.serve("inbox", "--allow-uploads")
    local = cluster.work / "up.dat"
    digest = big_file(local, 8 * MiB + 3, "frozen")
    receiver = cluster.procs["inbox"]
    receiver.send_signal(signal.SIGSTOP)  # its port still accepts connections: the kernel answers, nobody reads
    try:
        env = dict(cluster.env, P2P_LOG_LEVEL="warning")
        out = cluster.peer("put", str(local), "--to", "inbox", "--stall-timeout", "2", env=env, timeout=60)
    finally:
        receiver.send_signal(signal.SIGCONT)
    assert out.returncode == 1 and "inbox took nothing for 2 s" in out.stderr and out.stderr.count("\n") == 1, out.stderr
    again = cluster.peer("put", str(local), "--to", "inbox")
    assert again.returncode == 0, again.stderr
    assert hashlib.sha256((inbox / "up.dat").read_bytes()).hexdigest() == digest


def test_a_listen_address_that_cannot_be_used_is_one_line_naming_the_cause(cluster):
    """gRPC says only "Failed to bind"; the line says why, and a port out of range is refused
    (gRPC took 127.0.0.1:99999 for "any free port" and served where nobody would look)."""
    taken = cluster.tracker  # the cluster's tracker listens there
    env = {k: v for k, v in cluster.env.items() if k != "GRPC_VERBOSITY"}  # as a user's shell has it
    cases = {
        taken: "Address already in use; another process listens on that port",
        "127.0.0.1:99999": "give host:port with a port of 1-65535",
        "http://127.0.0.1:5000": "0.0.0.0:50051 or [::]:50051; drop the scheme: a gRPC address is host:port, not a URL",
        "192.0.2.1:5000": "no interface of this host has that address",  # TEST-NET-1: on no host
    }
    nonlocal_bind = Path("/proc/sys/net/ipv4/ip_nonlocal_bind")
    if nonlocal_bind.exists() and nonlocal_bind.read_text().strip() != "0":
        del cases["192.0.2.1:5000"]  # this host lets any address be bound: the tracker would serve
    for listen, cause in cases.items():
        tracker = subprocess.run(
            [str(BIN / "p2p-tracker"), "--listen", listen, "--db", str(cluster.work / "second.db")],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        serve = cluster.peer("serve", "--share", str(cluster.work / "s"), "--listen", listen, env=env, timeout=60)
        for out in (tracker, serve):
            assert out.returncode == 1, out
            assert f"cannot listen on {listen}: " in out.stderr and cause in out.stderr, out.stderr
            assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr


def _where_it_cannot_be_written(folder: Path, cmd: list[str]) -> list[str]:
    """cmd, run where folder cannot be written: by its permissions for a user; for root, whom they
    do not stop, in a mount namespace of its own with folder bound read-only (a read-only disk)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return cmd
    if subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("root, and no mount namespace to make a read-only folder in")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(folder), *cmd]


def test_a_share_this_user_cannot_write_is_served_its_cache_kept_elsewhere(cluster):
    """A dataset on a read-only disk, or another user's folder: `serve` and `ls` stopped at
    "Read-only file system: SHARE/.p2p"; the hash cache now goes to the user's state folder."""
    share = cluster.work / "dataset"
    share.mkdir()
    digest = big_file(share / "data.csv", 3 * MiB + 7, "dataset")
    state = cluster.work / "state"
    env = dict(cluster.env, XDG_STATE_HOME=str(state))
    address = f"127.0.0.1:{free_port()}"
    serve = [str(BIN / "p2p-peer"), "--name", "lab", "serve", "--share", str(share), "--listen", address]
    try:
        listed = subprocess.run(
            _where_it_cannot_be_written(share, [str(BIN / "p2p-peer"), "ls", "--share", str(share)]),
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert listed.returncode == 0 and f"{digest}" in listed.stdout and "data.csv" in listed.stdout, listed
        cluster._start("lab", _where_it_cannot_be_written(share, serve), env)
        cluster.wait_healthy(address)
        wait_for(lambda: [f["name"] for f in cluster.search("data")] == ["data.csv"], timeout=30, what="data.csv listed")
        got = cluster.peer("get", "data.csv", "-o", str(cluster.work / "copy.csv"))
        assert got.returncode == 0, got.stderr
        assert hashlib.sha256((cluster.work / "copy.csv").read_bytes()).hexdigest() == digest
    finally:
        share.chmod(0o755)
    assert sorted(p.name for p in share.iterdir()) == ["data.csv"]  # nothing written in the share
    (cache,) = state.glob("p2p-peer/shares/*/hashes.db")
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT name, sha256 FROM hashes").fetchall() == [("data.csv", digest)]


def test_a_get_outliving_its_session_lease_keeps_its_session(tmp_path, monkeypatch):
    """A client-only command renews its session as `serve` does: a `get --all` of an album longer
    than the tracker's lease (2 s here, 60 by default) failed from the first file that started
    after it ("ticket holder's session is no longer live")."""
    monkeypatch.setenv("P2P_LEASE", "2")  # read by the cluster's tracker
    cluster = Cluster(tmp_path)
    try:
        share = cluster.serve("slow", "--max-serve-rate", "64K")
        digests = {f"t{i}.flac": big_file(share / "album" / f"t{i}.flac", 64 * 1024, f"t{i}") for i in range(4)}
        wait_for(lambda: len(cluster.search("album")) == 4, timeout=20, what="the album listed")
        out = cluster.peer("get", "--all", "album/*", "-j", "1", "-o", "copy/")  # ~4 s at 64 KiB/s
        assert out.returncode == 0, out.stderr
        for name, digest in digests.items():
            assert hashlib.sha256((cluster.work / "copy" / "album" / name).read_bytes()).hexdigest() == digest
    finally:
        cluster.stop()


def test_peers_lists_who_is_online_or_says_nobody_is(cluster):
    alone = cluster.peer("peers")
    assert alone.returncode == 0 and alone.stdout == "no peer is online\n", alone
    share = cluster.serve("lone")
    (share / "one.txt").write_text("1")
    line = re.compile(r"^lone +127\.0\.0\.1:\d+ +1 file$", re.M)
    wait_for(lambda: line.search(cluster.peer("peers").stdout), timeout=20, what="lone listed with its 1 file")
    cluster.serve("a-peer-whose-name-is-longer-than-twenty")  # once pushed its address out of the column
    wait_for(lambda: len(cluster.peer("peers").stdout.splitlines()) == 3, timeout=20, what="both listed")
    lines = cluster.peer("peers").stdout.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "FILES"]
    assert len({row.index("127.0.0.1") for row in lines[1:]} | {lines[0].index("ADDRESS")}) == 1, lines


def test_search_and_get_take_one_peers_share_and_peers_prints_json(cluster):
    ann, bo = cluster.serve("ann"), cluster.serve("bo")
    (ann / "docs").mkdir()
    (ann / "docs" / "notes.txt").write_text("same")
    (ann / "ann.txt").write_text("ann")
    (bo / "notes-copy.txt").write_text("same")
    (bo / "bo.txt").write_text("bo")
    wait_for(lambda: len(cluster.search()) == 3, timeout=20, what="both shares published")
    out = cluster.peer("search", "--peer", "ann", "--json")
    assert out.returncode == 0, out.stderr
    rows = {row["name"]: row for row in json.loads(out.stdout)}
    assert sorted(rows) == ["ann.txt", "docs/notes.txt"]  # ann's names, not bo's for the same content
    assert sorted(p["name"] for p in rows["docs/notes.txt"]["peers"]) == ["ann", "bo"]  # every source, to fetch from
    table = cluster.peer("search", "--peer", "bo", "notes")
    assert table.returncode == 0 and table.stdout.splitlines()[1].split()[0] == "notes-copy.txt", table.stdout
    assert cluster.peer("search", "--peer", "ann", "bo").stdout == "no matches\n"
    gone = cluster.peer("search", "--peer", "nobody")
    assert gone.returncode == 1 and gone.stderr == "p2p-peer search: peer 'nobody' is not online\n", gone.stderr
    bad = cluster.peer("search", "--peer", "no body")
    assert bad.returncode == 1 and "account name 'no body' must be" in bad.stderr and bad.stderr.count("\n") == 1
    listed = json.loads(cluster.peer("peers", "--json").stdout)
    assert sorted((p["name"], p["files"], p["reachability_problem"]) for p in listed) == [("ann", 2, ""), ("bo", 2, "")]
    sources = rows["docs/notes.txt"]["peers"]
    assert {(p["name"], p["address"]) for p in listed} == {(p["name"], p["address"]) for p in sources}
    # get --peer: what that peer shares, by its names, from every source
    mirror = cluster.peer("get", "--all", "*", "--peer", "ann", "-o", "mirror/")
    assert mirror.returncode == 0, mirror.stderr
    into = cluster.work / "mirror"
    got = {p.relative_to(into).as_posix(): p.read_text() for p in into.rglob("*") if p.is_file()}
    assert got == {"docs/notes.txt": "same", "ann.txt": "ann"}
    one = cluster.peer("get", "notes-copy.txt", "--peer", "bo", "-o", "copy.txt")
    assert one.returncode == 0 and (cluster.work / "copy.txt").read_text() == "same", one.stderr
    for args, said in [
        (["notes-copy.txt", "--peer", "ann"], "no file named 'notes-copy.txt' is shared by peer 'ann'"),
        (["--all", "bo*", "--peer", "ann"], "peer 'ann' shares no file matching 'bo*'"),
        (["ann.txt", "--peer", "nobody"], "peer 'nobody' is not online"),
    ]:
        refused = cluster.peer("get", *args)
        assert refused.returncode == 1 and refused.stderr == f"p2p-peer get: {said}\n", refused.stderr


def test_serve_warns_when_the_tracker_cannot_connect_to_the_address_it_advertises(cluster):
    wrong = f"127.0.0.1:{free_port()}"  # a typo: nothing listens there
    cluster.serve("typo", "--advertise", wrong)
    cluster.serve("fine")
    log = cluster.work / "typo.log"
    said = f"the tracker could not connect to this peer at {wrong}: connection refused"
    wait_for(lambda: said in log.read_text(), timeout=20, what="the warning")
    assert "check --advertise" in log.read_text()
    wait_for(lambda: len(cluster.peer("peers").stdout.splitlines()) == 3, timeout=20, what="both listed")
    assert "could not connect" not in (cluster.work / "fine.log").read_text()
    fine, typo = cluster.peer("peers").stdout.splitlines()[1:]  # listed all the same, marked
    assert typo.startswith("typo ") and typo.endswith("0 files  (the tracker cannot connect to it)"), typo
    assert fine.startswith("fine ") and fine.endswith("0 files"), fine
    listed = {p["name"]: p["reachability_problem"] for p in json.loads(cluster.peer("peers", "--json").stdout)}
    assert listed["typo"].startswith("connection refused") and listed["fine"] == ""


def test_status_of_a_serving_peer(cluster):
    share = cluster.serve("shop", "--max-serve-rate", "20M")
    (share / ".git").mkdir()
    (share / ".git" / "config").write_text("secret")
    (share / "wares.txt").write_text("wares")
    wait_for(lambda: cluster.search("wares"), timeout=20, what="wares.txt published")
    assert cluster.peer("get", "wares.txt", "-o", "got.txt").returncode == 0
    table = cluster.peer("status", "shop")
    assert table.returncode == 0, table.stderr
    assert "shares     1 file, 5 B; left out 1 (hidden, or matched by --exclude)" in table.stdout, table.stdout
    assert "served     1 chunk, 5 B" in table.stdout
    assert "serve rate 20.0 MiB/s" in table.stdout and "(not accepted)" in table.stdout
    [row] = json.loads(cluster.peer("status", "shop", "--json").stdout)
    assert (row["files"], row["bytes"], row["chunks_served"], row["max_serve_rate"], row["left_out"]) == (1, 5, 1, 20 << 20, 1)
    gone = cluster.peer("status", "nobody")
    assert gone.returncode == 1 and "peer 'nobody' is not online" in gone.stderr and gone.stderr.count("\n") == 1


def test_status_tells_of_accounts_waiting_for_a_transfer_slot(cluster):
    """An operator wondering why a seed is slow to answer sees who queues for its slots."""
    share = cluster.serve("lecturer", "--max-transfers", "1", "--max-serve-rate", "1M")
    big_file(share / "lecture.mp4", 12 * MiB, "lecture")  # the first get holds the slot ~12 s
    wait_for(lambda: cluster.search("lecture.mp4"), timeout=30, what="lecture.mp4 published")
    gets = [
        subprocess.Popen(
            [str(BIN / "p2p-peer"), "--name", who, "get", "lecture.mp4", "-o", str(cluster.work / f"{who}.mp4")],
            env=cluster.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for who in ("alice", "bob")
    ]
    try:
        waiting = "transfers  1 now, at most 1, 1 account waiting for one; serve rate 1.0 MiB/s"
        wait_for(lambda: waiting in cluster.peer("status", "lecturer").stdout, timeout=30, what="a get waiting")
        [row] = json.loads(cluster.peer("status", "lecturer", "--json").stdout)
        assert (row["transfers_active"], row["transfers_max"], row["transfers_waiting"]) == (1, 1, 1)
    finally:
        stop_processes(gets)


def test_status_shows_the_places_that_answer_and_names_the_one_that_does_not(cluster):
    """An account serving from two places, one frozen (SIGSTOP): the command failed after 10 s
    with 'status of lab: timed out', showing neither place nor which one it was."""
    cluster.serve("lab")
    desk, address = cluster.work / "share-lab-desk", f"127.0.0.1:{free_port()}"
    desk.mkdir()
    cluster._start("lab-desk", [str(BIN / "p2p-peer"), "--name", "lab", "serve", "--share", str(desk), "--listen", address])
    cluster.wait_healthy(address)
    wait_for(lambda: len(json.loads(cluster.peer("status", "lab", "--json").stdout)) == 2, timeout=20, what="two places")
    cluster.procs["lab-desk"].send_signal(signal.SIGSTOP)
    try:
        out = cluster.peer("status", "lab", "--json")
    finally:
        cluster.procs["lab-desk"].send_signal(signal.SIGCONT)
    assert out.returncode == 1 and out.stderr == f"p2p-peer status: lab@{address} did not answer within 10 s\n", out.stderr
    rows = {row["address"]: row for row in json.loads(out.stdout)}
    assert rows.pop(address) == {"address": address, "error": f"lab@{address} did not answer within 10 s"}
    [answered] = rows.values()
    assert answered["files"] == 0 and answered["uptime_seconds"] >= 0


def test_peers_still_downloading_a_file_serve_its_chunks_to_each_other(cluster):
    """BitTorrent's swarming: a peer fetching a file into its share serves the chunks it has
    verified before it has them all, so a second downloader takes part of the file from it and
    not everything from the one (slow) seed."""
    seed = cluster.serve("seed", "--max-serve-rate", "4M")
    digest = big_file(seed / "movie.bin", 24 * MiB, "movie")
    wait_for(lambda: cluster.search("movie.bin"), timeout=30, what="movie.bin to be published")
    bob_share = cluster.serve("bob")
    bob_get = subprocess.Popen(
        [str(BIN / "p2p-peer"), "--name", "bob", "get", "movie.bin", "-o", str(bob_share / "movie.bin")],
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        partial = lambda: [p for r in cluster.search("movie.bin") for p in r["peers"] if p["name"] == "bob" and p["partial"]]  # noqa: E731
        wait_for(partial, timeout=30, interval=0.2, what="bob listed as a partial source")
        table = cluster.peer("search", "movie.bin")
        assert "1 (+1 downloading)" in table.stdout, table.stdout
        out = cluster.peer("get", "movie.bin", "-o", "carol.bin", name="carol")
        assert out.returncode == 0, out.stderr
        assert hashlib.sha256((cluster.work / "carol.bin").read_bytes()).hexdigest() == digest
        from_bob = re.search(r"\bbob:(\d+)", out.stdout)
        assert from_bob and int(from_bob[1]) > 0, out.stdout  # chunks bob had verified went from bob to carol
        _, bob_err = bob_get.communicate(timeout=120)
        assert bob_get.returncode == 0, bob_err
    finally:
        if bob_get.poll() is None:
            bob_get.kill()
            bob_get.wait()
    assert hashlib.sha256((bob_share / "movie.bin").read_bytes()).hexdigest() == digest
    whole = lambda: [p for r in cluster.search("movie.bin") for p in r["peers"] if p["name"] == "bob" and not p["partial"]]  # noqa: E731
    wait_for(whole, timeout=30, interval=0.2, what="bob listed with the whole file")


def test_downloads_started_together_find_each_other_and_swap_chunks(cluster):
    """A flash crowd: neither download is listed when the other starts; each learns of the other
    when it asks the tracker again (every few seconds) and takes chunks from it."""
    seed = cluster.serve("seed", "--max-serve-rate", "4M")
    digest = big_file(seed / "album.bin", 24 * MiB, "album")
    wait_for(lambda: cluster.search("album.bin"), timeout=30, what="album.bin to be published")
    shares = {name: cluster.serve(name) for name in ("bob", "dave")}
    gets = {
        name: subprocess.Popen(
            [str(BIN / "p2p-peer"), "--name", name, "get", "album.bin", "-o", str(share / "album.bin")],
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, share in shares.items()
    }
    said = {}
    try:
        for name, proc in gets.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            said[name] = out
    finally:
        for proc in gets.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for name, other in (("bob", "dave"), ("dave", "bob")):
        assert hashlib.sha256((shares[name] / "album.bin").read_bytes()).hexdigest() == digest
        from_other = re.search(rf"\b{other}:(\d+)", said[name])
        assert from_other and int(from_other[1]) > 0, said[name]
