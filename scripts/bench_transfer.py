"""Transfer benchmark: `p2p-peer get` against raw TCP and curl + http.server, in one run.

On one file (1 GiB by default) over loopback, every receiver writing to disk:
  * raw TCP: socket.sendfile to a receiver doing recv_into + write (the limit);
  * curl fetching it from `python -m http.server` (the baseline the target is set against);
  * `p2p-peer get` from one serving peer and from three, and from one over TLS (what encryption costs;
    a TLS tracker and peer with the test certificates of tests/data/tls);
  * `p2p-peer get` from one and from three peers that each serve at most --serve-rate-mib (what
    swarming gains where sources, not this machine's two cores, are the limit);
  * hashing: `p2p-peer ls` on a fresh share (chained chunk digests, one pass) against `sha256sum`;
  * many small files (--small-files, 2,000 of 1-8 KiB): `get --all` and `put` of the folder
    against one curl fetching them all from http.server.
Each is repeated (--runs, default 5) and the median reported, with peak RSS of the downloading
and serving processes. Rounds alternate curl with each `get`, and "vs curl" is the median of the
ratios within a round: this VM's speed drifts by 2x over minutes (page-cache reclaim), and pairing
cancels that drift. Prints a table; numbers, not a test.

    python scripts/bench_transfer.py [--size-mib 1024] [--runs 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

BIN = Path(sys.executable).parent
MiB = 1 << 20
CURL = "curl <- python -m http.server"
TLS_GET = "p2p-peer get, 1 peer, TLS"
CAPPED_ONE = "p2p-peer get, 1 capped peer"
CAPPED_THREE = "p2p-peer get, 3 capped peers"
SMALL_CURL = "curl <- http.server, one curl for all"
SMALL_GET = "p2p-peer get --all"
SMALL_PUT = "p2p-peer put (the folder)"
SMALL_FOLDERS = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Run(NamedTuple):
    """One measured command: wall seconds, peak RSS in KiB, and its CPU seconds (user, system)."""

    seconds: float
    rss_kib: int
    user: float
    system: float


def timed(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """How a command that must succeed ran."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    if proc.stderr:
        proc.stderr.close()
    return Run(elapsed, usage.ru_maxrss, usage.ru_utime, usage.ru_stime)


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


RAW_RECEIVER = r"""
import socket, sys, time
host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
buf = bytearray(1 << 20); view = memoryview(buf)
with socket.create_connection((host, port)) as s, open(out, "wb", buffering=0) as f:
    while True:
        n = s.recv_into(buf)
        if not n: break
        f.write(view[:n])
"""

RAW_SENDER = r"""
import socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
with socket.create_server(("127.0.0.1", port)) as srv:
    print("ready", flush=True)
    conn, _ = srv.accept()
    with conn, open(path, "rb") as f:
        conn.sendfile(f)
"""


def raw_tcp(source: Path, dest: Path) -> Run:
    port = free_port()
    sender = subprocess.Popen([sys.executable, "-c", RAW_SENDER, str(port), str(source)], stdout=subprocess.PIPE, text=True)
    assert sender.stdout and sender.stdout.readline().strip() == "ready"
    result = timed([sys.executable, "-c", RAW_RECEIVER, "127.0.0.1", str(port), str(dest)])
    sender.wait(timeout=60)
    sender.stdout.close()
    return result


def random_file(path: Path, size_mib: int) -> None:
    """Incompressible bytes, settled (written a minute ago: a peer shares it at once)."""
    with open(path, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(MiB))
    old = time.time() - 60
    os.utime(path, (old, old))


def small_files(folder: Path, count: int) -> dict[str, int]:
    """count files of 1-8 KiB of random bytes, in SMALL_FOLDERS folders (a source tree, a photo
    library's thumbnails): their names under folder, and sizes."""
    sizes = {}
    for i in range(count):
        name = f"d{i % SMALL_FOLDERS:02d}/f{i:05d}.bin"
        size = 1024 + (i * 7919) % (7 * 1024)
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        sizes[name] = size
    return sizes


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every process still running (servers log out and drain), a kill after 15 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def wait_healthy(address: str, timeout: float = 120, env: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = subprocess.run(
            [sys.executable, "-m", "p2p_common.healthcheck", "--address", address], capture_output=True, env=env
        )
        if probe.returncode == 0:
            return
        time.sleep(0.2)
    raise SystemExit(f"{address} not healthy")


def precompile() -> None:
    """Bytecode for the project, as `pip install` leaves it: an editable install under
    PYTHONDONTWRITEBYTECODE=1 (this VM's default) would otherwise compile ~25 modules (~40 ms)
    at every start of `p2p-peer get`, which curl does not pay."""
    specs = [importlib.util.find_spec(name) for name in ("p2p.v1", "p2p_common", "peer", "tracker")]
    folders = [str(Path(spec.origin).parent) for spec in specs if spec and spec.origin]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *folders], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", help="work folder (default: a temp folder)")
    parser.add_argument("--serve-rate-mib", type=int, default=100, help="the capped peers' --max-serve-rate, MiB/s")
    parser.add_argument("--small-files", type=int, default=2000, help="files of 1-8 KiB for the many-small-files rows")
    args = parser.parse_args()
    precompile()
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-transfer-"))
    work.mkdir(parents=True, exist_ok=True)
    size = args.size_mib * MiB
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, list[Run]] = {}
    ratios: dict[str, list[float]] = {}  # per round: curl's time / this command's time
    serving_rss: dict[str, int] = {}
    try:
        source_dir = work / "source"
        source_dir.mkdir()
        source = source_dir / "big.bin"
        random_file(source, args.size_mib)
        small = small_files(source_dir / "small", args.small_files)
        shares = []
        for i in range(7):  # the fourth serves over TLS, the last three with a serve rate
            share = work / f"share{i}"
            share.mkdir()
            os.link(source, share / "big.bin")  # the same bytes, shared by three peers
            shares.append(share)
        shutil.copytree(source_dir / "small", shares[0] / "small", copy_function=os.link)  # seed0 shares them
        out = work / "out.bin"

        def record(name: str, value: Run) -> None:
            results.setdefault(name, []).append(value)
            out.unlink(missing_ok=True)

        # -- hashing: sha256sum against sharing a fresh folder -------------------------------
        def warm(path: Path) -> None:
            """Read path once so that both sides of a comparison start from the page cache."""
            with open(path, "rb") as f:
                while f.read(8 * MiB):
                    pass

        for _ in range(args.runs):
            warm(source)
            record("sha256sum", timed(["sha256sum", str(source)]))
            warm(source)
            state = work / "ls-share"
            shutil.rmtree(state, ignore_errors=True)
            state.mkdir()
            os.link(source, state / "big.bin")
            record("p2p-peer ls (hash a share)", timed([str(BIN / "p2p-peer"), "ls", "--share", str(state)]))

        # -- raw TCP and curl + http.server ------------------------------------------------
        http_port = free_port()
        http = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(source_dir), str(http_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(http)
        wait_port(http_port)

        # -- p2p: a tracker and three serving peers ------------------------------------------
        tracker = f"127.0.0.1:{free_port()}"
        env = dict(os.environ, P2P_TRACKER=tracker, P2P_PASSWORD="bench", P2P_LOG_LEVEL="warning")
        procs.append(subprocess.Popen([str(BIN / "p2p-tracker"), "--listen", tracker, "--db", ":memory:"], env=env))
        wait_healthy(tracker)
        peers = []

        def start_peer(i: int, peer_env: dict[str, str] = env, *extra: str) -> None:
            address = f"127.0.0.1:{free_port()}"
            cmd = [str(BIN / "p2p-peer"), "--name", f"seed{i}", "serve", "--share", str(shares[i]), "--listen", address]
            peer = subprocess.Popen([*cmd, *extra], env=peer_env, stdout=subprocess.DEVNULL)
            procs.append(peer)
            peers.append(peer)
            wait_healthy(address, env=peer_env)

        def wait_listed(
            search_args: list[str], done: Callable[[list[dict]], bool], never: str, search_env: dict[str, str] = env
        ) -> None:
            """Until `search` shows what done asks for (peers index and publish in the background)."""
            search = [str(BIN / "p2p-peer"), "--name", "bench", "search", *search_args, "--json"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if done(json.loads(subprocess.run(search, env=search_env, capture_output=True, text=True).stdout or "[]")):
                    return
                time.sleep(0.3)
            raise SystemExit(never)

        def wait_sources(count: int, search_env: dict[str, str] = env) -> None:
            def listed(found: list[dict]) -> bool:
                return bool(found) and len(found[0]["peers"]) == count

            wait_listed(["big.bin"], listed, f"big.bin never had {count} sources", search_env)

        get = [str(BIN / "p2p-peer"), "--name", "bench", "get", "big.bin", "-o", str(out)]
        fetch_with_curl = ["curl", "-sS", "-o", str(out), f"http://127.0.0.1:{http_port}/big.bin"]

        def paired_round(name: str, cmd: list[str], cmd_env: dict[str, str] = env) -> None:
            """curl, then cmd, back to back: their ratio is what this round says about cmd."""
            warm(source)
            baseline = timed(fetch_with_curl)
            record(CURL, baseline)
            warm(source)
            run = timed(cmd, env=cmd_env)
            record(name, run)
            ratios.setdefault(name, []).append(baseline.seconds / run.seconds)

        start_peer(0)
        wait_sources(1)
        for _ in range(args.runs):
            warm(source)
            record("raw TCP (sendfile -> recv_into)", raw_tcp(source, out))
            paired_round("p2p-peer get, 1 peer", get)

        # -- many small files: one curl for all of them, get --all, and put of the folder ----
        sink = work / "sink"
        sink.mkdir()
        sink_address = f"127.0.0.1:{free_port()}"
        sink_cmd = [str(BIN / "p2p-peer"), "--name", "sink", "serve", "--share", str(sink), "--listen", sink_address]
        procs.append(subprocess.Popen([*sink_cmd, "--allow-uploads"], env=env, stdout=subprocess.DEVNULL))
        wait_healthy(sink_address)
        wait_listed(
            ["small/", "--limit", str(len(small))],
            lambda found: len(found) == len(small),
            "the small files were never all published",
        )
        for round_ in range(args.runs):
            many = work / f"many{round_}"
            config = work / "curl-config"
            config.write_text(
                "".join(f'url = "http://127.0.0.1:{http_port}/small/{n}"\noutput = "{many / "curl" / n}"\n' for n in small)
            )
            record(SMALL_CURL, timed(["curl", "-sS", "--create-dirs", "-K", str(config)]))
            get_all = [str(BIN / "p2p-peer"), "--name", "bench", "get", "--all", "small/*", "-o", str(many / "get") + "/"]
            record(SMALL_GET, timed(get_all, env=env))
            put = [str(BIN / "p2p-peer"), "--name", "bench", "put", str(source_dir / "small"), "--to", "sink"]
            record(SMALL_PUT, timed([*put, "--as", f"round{round_}"], env=env))
            for name in small:  # every file, every way, the same bytes
                original = (source_dir / "small" / name).read_bytes()
                for copy in (many / "curl" / name, many / "get/small" / name, sink / f"round{round_}" / name):
                    if copy.read_bytes() != original:
                        raise SystemExit(f"{copy} differs from the original")
            shutil.rmtree(many)
        start_peer(1)
        start_peer(2)
        wait_sources(3)
        for _ in range(args.runs):
            paired_round("p2p-peer get, 3 peers", get)

        # -- the same get over TLS: its own tracker and one peer, certificates of the tests --
        tls = Path(__file__).resolve().parent.parent / "tests" / "data" / "tls"
        serve_tls = ["--tls-cert", str(tls / "server.pem"), "--tls-key", str(tls / "server-key.pem")]
        tls_tracker = f"127.0.0.1:{free_port()}"
        tls_env = dict(env, P2P_TRACKER=tls_tracker, P2P_TLS_CA=str(tls / "ca.pem"))
        tracker_cmd = [str(BIN / "p2p-tracker"), "--listen", tls_tracker, "--db", ":memory:", *serve_tls]
        procs.append(subprocess.Popen(tracker_cmd, env=tls_env))
        wait_healthy(tls_tracker, env=tls_env)
        start_peer(3, tls_env, *serve_tls)
        wait_sources(1, tls_env)
        for _ in range(args.runs):
            paired_round(TLS_GET, get, tls_env)

        # -- swarming where it pays: sources whose serve rate is capped (as on real uplinks) --
        capped_tracker = f"127.0.0.1:{free_port()}"
        capped_env = dict(env, P2P_TRACKER=capped_tracker)
        procs.append(subprocess.Popen([str(BIN / "p2p-tracker"), "--listen", capped_tracker, "--db", ":memory:"], env=capped_env))
        wait_healthy(capped_tracker, env=capped_env)
        cap = ["--max-serve-rate", str(args.serve_rate_mib * MiB)]
        start_peer(4, capped_env, *cap)
        wait_sources(1, capped_env)
        for _ in range(args.runs):
            warm(source)
            record(CAPPED_ONE, timed(get, env=capped_env))
        start_peer(5, capped_env, *cap)
        start_peer(6, capped_env, *cap)
        wait_sources(3, capped_env)
        for _ in range(args.runs):
            warm(source)
            record(CAPPED_THREE, timed(get, env=capped_env))
        for i, peer in enumerate(peers):
            serving_rss[f"seed{i}"] = peak_rss_kib(peer.pid)
    finally:
        stop(procs)
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)

    def median_rate(name: str) -> float:
        return size / MiB / statistics.median(r.seconds for r in results[name])

    def cpu_per_gib(name: str, part: str) -> float:
        return statistics.median(getattr(r, part) for r in results[name]) / (size / (1 << 30))

    curl = median_rate(CURL)

    def vs_curl(name: str) -> float:
        return statistics.median(ratios[name]) if name in ratios else median_rate(name) / curl

    sha = median_rate("sha256sum")
    print(f"\nTransfer benchmark: {args.size_mib} MiB file over loopback, written to disk, median of {args.runs} runs")
    print("(vs curl: median of the ratios within each round of curl and that command, run back to back)")
    print(f"{'what':<36} {'MiB/s':>8} {'vs curl':>8} {'peak RSS MiB':>13} {'user s/GiB':>11} {'sys s/GiB':>10}")
    for name in (
        "raw TCP (sendfile -> recv_into)",
        CURL,
        "p2p-peer get, 1 peer",
        "p2p-peer get, 3 peers",
        TLS_GET,
    ):
        rss = max(r.rss_kib for r in results[name]) / 1024
        user, system = cpu_per_gib(name, "user"), cpu_per_gib(name, "system")
        print(f"{name:<36} {median_rate(name):>8.0f} {vs_curl(name):>8.2f} {rss:>13.0f} {user:>11.2f} {system:>10.2f}")
    print(f"{'what':<36} {'MiB/s':>8} {'vs sha256sum':>12}")
    for name in ("sha256sum", "p2p-peer ls (hash a share)"):
        print(f"{name:<36} {median_rate(name):>8.0f} {median_rate(name) / sha:>12.2f}")
    count = len(small)
    small_mib = sum(small.values()) / MiB
    curl_files = count / statistics.median(r.seconds for r in results[SMALL_CURL])
    title = f"{count} files of 1-8 KiB ({small_mib:.1f} MiB) in {SMALL_FOLDERS} folders, median of {args.runs} runs"
    print(f"\nMany small files: {title}")
    print(f"{'what':<36} {'files/s':>8} {'vs curl':>8} {'seconds':>8}")
    for name in (SMALL_CURL, SMALL_GET, SMALL_PUT):
        seconds = statistics.median(r.seconds for r in results[name])
        print(f"{name:<36} {count / seconds:>8.0f} {count / seconds / curl_files:>8.2f} {seconds:>8.2f}")
    one = median_rate(CAPPED_ONE)
    print(f"\nSwarming where sources are the limit: every peer serves at most {args.serve_rate_mib} MiB/s (--max-serve-rate)")
    print(f"{'what':<36} {'MiB/s':>8} {'vs 1 peer':>10}")
    for name in (CAPPED_ONE, CAPPED_THREE):
        print(f"{name:<36} {median_rate(name):>8.0f} {median_rate(name) / one:>10.2f}")
    print("(CPU: of the receiving process, medians. This VM charges first writes into fresh page-cache memory")
    print(" to the writer's system time, and that varies run to run: compare user time across runs.)")
    print("peak RSS of serving peers (MiB): " + ", ".join(f"{k} {v / 1024:.0f}" for k, v in serving_rss.items()))


if __name__ == "__main__":
    main()
