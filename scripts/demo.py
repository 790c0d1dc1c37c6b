"""The one-command demo: a tracker and peers on loopback sharing and fetching real files.

Every step prints what it does; any failure stops the demo with a non-zero exit, and every
process it started is stopped (SIGTERM, then SIGKILL) whatever happens. With --tls, every server
serves TLS and every client verifies it (with the tests' certificates, made for 127.0.0.1).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

MiB = 1 << 20
PEERS = ("alice", "bob", "carol")
TLS = Path(__file__).resolve().parent.parent / "tests" / "data" / "tls"


class DemoFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


def run(*cmd: str, env: dict[str, str] | None = None) -> str:
    print("$ " + shlex.join(cmd), flush=True)
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, timeout=300)
    print(out.stdout, end="", flush=True)
    if out.returncode != 0:
        raise DemoFailed(f"`{' '.join(cmd)}` exited with {out.returncode}")
    return out.stdout


def wait_healthy(address: str, service: str, proc: subprocess.Popen[bytes], log: Path, env: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        probe = subprocess.run(
            [sys.executable, "-m", "p2p_common.healthcheck", "--address", address, "--service", service],
            capture_output=True,
            text=True,
            env=env,  # P2P_TLS_CA, with --tls
        )
        if probe.returncode == 0:
            print(f"  {probe.stdout.strip()}")
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise DemoFailed(f"{service} at {address} did not become healthy:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)


def sample_bytes(size: int, seed: str) -> bytes:
    block = b"".join(hashlib.sha256(f"{seed}{i}".encode()).digest() for i in range(2048))
    return (block * (size // len(block) + 1))[:size]


def write_settled(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    old = time.time() - 5
    os.utime(path, (old, old))


@contextlib.contextmanager
def processes() -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        yield procs
    finally:
        step("stopping every process (SIGTERM: peers log out, servers drain)")
        for _name, proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in reversed(procs):
            try:
                code = proc.wait(timeout=15)
                print(f"  {name} exited with {code}")
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                print(f"  {name} did not stop in time and was killed")


def demo(work: Path, tls: bool = False) -> None:
    tracker_port = free_port()
    tracker_addr = f"127.0.0.1:{tracker_port}"
    env = dict(os.environ, P2P_TRACKER=tracker_addr, P2P_PASSWORD="demo-password", P2P_LOG_LEVEL="info")
    transport = ["-plaintext"]  # for grpcurl
    if tls:  # servers read the certificate and key, every client (and the health probe) the CA
        env.update(P2P_TLS_CERT=str(TLS / "server.pem"), P2P_TLS_KEY=str(TLS / "server-key.pem"), P2P_TLS_CA=str(TLS / "ca.pem"))
        transport = ["-cacert", env["P2P_TLS_CA"]]
    with processes() as procs:
        over = " over TLS" if tls else ""
        step(f"starting the tracker on {tracker_addr}{over} (embedded SQLite at {work / 'tracker.db'})")
        log = work / "tracker.log"
        with open(log, "w") as log_file:
            proc = subprocess.Popen(
                ["p2p-tracker", "--listen", tracker_addr, "--db", str(work / "tracker.db")], stderr=log_file, env=env
            )
        procs.append(("tracker", proc))
        wait_healthy(tracker_addr, "p2p.v1.TrackerService", proc, log, env)

        peer_addrs: dict[str, str] = {}

        def serve(name: str, share: Path, *flags: str, why: str = "") -> None:
            port = free_port()
            peer_addrs[name] = f"127.0.0.1:{port}"
            step(f"starting peer {name} on 127.0.0.1:{port}{over}, sharing {share}{why}")
            log = work / f"{name}.log"
            cmd = ["p2p-peer", "--name", name, "serve", "--share", str(share), "--listen", peer_addrs[name], *flags]
            with open(log, "w") as log_file:
                proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
            procs.append((name, proc))
            wait_healthy(peer_addrs[name], "p2p.v1.PeerService", proc, log, env)

        dataset = sample_bytes(64 * MiB, "dataset")
        for i, name in enumerate(PEERS):
            share = work / f"share-{name}"
            write_settled(share / "dataset-64MiB.bin", dataset)  # every peer has it: a multi-source download
            write_settled(share / f"{name}-notes.txt", f"notes kept by {name}\n".encode() * 100)
            write_settled(share / "photos" / f"{name}-{i}.jpg", sample_bytes(300_000 + i, name))
            serve(name, share, *(["--allow-uploads"] if name == "alice" else []))

        step("who is online")
        deadline = time.monotonic() + 20
        while len(re.findall(r" [1-9]\d* files?$", run("p2p-peer", "--name", "dave", "peers", env=env), re.M)) < len(PEERS):
            if time.monotonic() > deadline:
                raise DemoFailed("not every peer published its index")
            time.sleep(0.5)

        step("searching the directory as a new user, dave (a client-only session)")
        run("p2p-peer", "--name", "dave", "search", "", env=env)
        run("p2p-peer", "--name", "dave", "search", "*.jpg", env=env)

        step(f"dave browses what {PEERS[2]} shares (search --peer)")
        browsed = run("p2p-peer", "--name", "dave", "search", "--peer", PEERS[2], env=env)
        if f"{PEERS[2]}-notes.txt" not in browsed or f"{PEERS[0]}-notes.txt" in browsed:
            raise DemoFailed(f"browsing {PEERS[2]} did not list exactly its files")

        step("dave downloads the 64 MiB dataset from all three peers at once, every chunk verified")
        downloads = work / "downloads"
        downloads.mkdir()
        run("p2p-peer", "--name", "dave", "get", "dataset-64MiB.bin", "-o", str(downloads), env=env)
        got = hashlib.sha256((downloads / "dataset-64MiB.bin").read_bytes()).hexdigest()
        want = hashlib.sha256(dataset).hexdigest()
        print(f"  sha256 of the download: {got}\n  sha256 of the original: {want}")
        if got != want:
            raise DemoFailed("the downloaded file differs from the original")

        step("dave fetches every photo at once (a pattern, --all), each in its folder")
        run("p2p-peer", "--name", "dave", "get", "--all", "photos/*", "-o", str(downloads), env=env)
        for i, name in enumerate(PEERS):
            if (downloads / "photos" / f"{name}-{i}.jpg").read_bytes() != sample_bytes(300_000 + i, name):
                raise DemoFailed(f"photo {name}-{i}.jpg differs from the original")

        notes = f"notes kept by {PEERS[1]}\n".encode() * 100
        digits = hashlib.sha256(notes).hexdigest()[:12]
        step(f"dave fetches {PEERS[1]}'s notes by the first sha256 digits search shows ({digits})")
        run("p2p-peer", "--name", "dave", "get", digits, "-o", str(downloads / "notes.txt"), env=env)
        if (downloads / "notes.txt").read_bytes() != notes:
            raise DemoFailed("the notes fetched by their sha256 differ")

        step("dave streams the dataset into a pipe (get -o -): chunks fetched, verified and written in file order")
        streamed = run("sh", "-c", "p2p-peer --name dave get dataset-64MiB.bin -o - | sha256sum", env=env)
        if streamed.split()[0] != want:
            raise DemoFailed("the dataset streamed to standard output differs from the original")

        step("dave uploads a report and a folder of scans to alice, who accepts uploads, into her inbox")
        report = work / "report.txt"
        report.write_text("quarterly report\n" * 1000)
        scans = {f"scans/page-{i}.txt": f"scanned page {i}\n" * 500 for i in (1, 2)}
        for name, text in scans.items():
            (work / name).parent.mkdir(exist_ok=True)
            (work / name).write_text(text)
        sent = [str(report), str(work / "scans")]
        run("p2p-peer", "--name", "dave", "put", *sent, "--to", "alice", "--as", "inbox", env=env)
        for name, text in {"report.txt": report.read_text(), **scans}.items():
            if (work / "share-alice" / "inbox" / name).read_text() != text:
                raise DemoFailed(f"alice's copy of {name} differs")
        deadline = time.monotonic() + 20
        while "inbox/report.txt" not in run("p2p-peer", "--name", "dave", "search", "report", env=env):
            if time.monotonic() > deadline:
                raise DemoFailed("the uploaded report was not published")
            time.sleep(0.5)

        film = sample_bytes(48 * MiB, "film")
        write_settled(work / "share-gina" / "film-48MiB.bin", film)
        serve("gina", work / "share-gina", "--max-serve-rate", "16M", why=", at most 16 MiB/s to everyone together")
        crowd = {name: work / f"share-{name}" for name in ("erin", "frank")}
        for name, share in crowd.items():
            serve(name, share, why=" (empty)")
        deadline = time.monotonic() + 20
        while "film-48MiB.bin" not in run("p2p-peer", "--name", "dave", "search", "film", env=env):
            if time.monotonic() > deadline:
                raise DemoFailed("gina's film was not published")
            time.sleep(0.5)
        step("erin and frank fetch the film into their shares at the same moment: each is listed as a partial source")
        print("  at once and serves the chunks it has verified, so they swap chunks instead of both waiting on gina")
        gets = {
            name: subprocess.Popen(
                ["p2p-peer", "--name", name, "get", "film-48MiB.bin", "-o", str(share / "film-48MiB.bin")],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for name, share in crowd.items()
        }
        try:
            for name, get in gets.items():
                out, err = get.communicate(timeout=120)
                print(f"  {name}: {out.strip() or err.strip()}", flush=True)
                if get.returncode != 0 or (crowd[name] / "film-48MiB.bin").read_bytes() != film:
                    raise DemoFailed(f"{name}'s copy of the film is missing or differs")
        finally:
            for get in gets.values():
                if get.poll() is None:
                    get.kill()
                    get.wait()

        step("the operator's view: grpcurl against the live tracker and a live peer (server reflection)")
        run("grpcurl", *transport, tracker_addr, "list")
        run("grpcurl", *transport, peer_addrs["bob"], "list")
        run("grpcurl", *transport, "-d", '{"service": "p2p.v1.TrackerService"}', tracker_addr, "grpc.health.v1.Health/Check")
        step("what bob has served meanwhile (its GetStatus)")
        run("p2p-peer", "--name", "dave", "status", "bob", env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tls", action="store_true", help="run every server and client over TLS (test certificates)")
    args = parser.parse_args()
    for tool in ("p2p-tracker", "p2p-peer", "grpcurl"):
        if shutil.which(tool) is None:
            print(f"demo: {tool} is not on PATH; run it through scripts/demo.sh", file=sys.stderr)
            return 1
    work = Path(tempfile.mkdtemp(prefix="p2p-demo-"))
    try:
        demo(work, args.tls)
    except (DemoFailed, subprocess.TimeoutExpired, OSError) as exc:
        print(f"\ndemo FAILED: {exc}\n(logs kept in {work})", file=sys.stderr)
        return 1
    step("demo complete: every step succeeded")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
