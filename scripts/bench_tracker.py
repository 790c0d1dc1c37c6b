"""Tracker benchmark: Query against a trivial RPC on the same server, and SendIndex of 100k files.

Fills a SQLite store with 10,000 live sessions and 1,000,000 files, starts `p2p-tracker` on it as
its own process, and drives load from a separate client process (grpc.aio) at concurrency 1, 8
and 64: Query (a mix of substring, glob and sha256 lookups) against grpc.health.v1.Health/Check,
a trivial unary RPC served by the same server stack (same process, interceptors, thread pool).
Then the ceiling: the same server stack with Query answering a canned page of 3 or 50 matches (no
store work at all), against Health again: what the RPC itself costs, which no store can go below.
Last, it times one SendIndex of 100,000 files. Prints tables; exits 0 (numbers, not a test).

    python scripts/bench_tracker.py [--files 1000000] [--sessions 10000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "or", "en")]
EXTS = ("mp3", "flac", "mkv", "pdf", "iso", "jpg", "txt", "tar.gz")
KINDS = {"title": 0.6, "word": 0.2, "glob": 0.1, "sha": 0.1, "common": 0.0}  # the query mix, by share
COMMON = ("mp3", "flac", "pdf", "a", "e", "ba")  # words in a large part of all names: measured, not in the mix
CANNED = {"canned3": 3, "canned50": 50}  # Query kinds of the ceiling run: a canned page of this many matches


def word(n: int) -> str:
    """The n-th word of a 20,000-word made-up vocabulary (names need real-world variety)."""
    r = random.Random(n * 7919)
    return "".join(r.choice(_SYLLABLES) for _ in range(r.randint(2, 4)))


def file_name(i: int) -> str:
    """artist/album/NN - two title words.ext; popular words recur, like real libraries."""
    r = random.Random(i)
    artist, album = word(r.randrange(2000)), word(2000 + r.randrange(5000))
    title = f"{word(r.randrange(20000))} {word(r.randrange(20000))}"
    return f"{artist}/{album}/{i % 20 + 1:02d} - {title}.{r.choice(EXTS)}"


def title_of(i: int) -> str:
    rest = file_name(i).split(" - ", 1)[1]
    return next(rest.removesuffix(f".{ext}") for ext in EXTS if rest.endswith(f".{ext}"))


def fill(db: Path, sessions: int, files: int) -> list[str]:
    """Fill the store directly (not through RPCs: 10,000 scrypt logins would take minutes)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tracker.sqlite_store import SqliteStore
    from tracker.store import FileRecord

    store = SqliteStore(str(db))
    store.add_account("bench-peer", "not-a-real-hash")
    now = time.time()
    per_session = files // sessions
    shas = []
    for first in range(0, sessions, 500):  # 500 sessions a transaction, through the store's own insert path
        with store._write() as c:
            for s in range(first, min(first + 500, sessions)):
                cur = c.execute(
                    "INSERT INTO sessions(account, token_hash, address, expires_at, created_at) VALUES (?,?,?,?,?)",
                    ("bench-peer", f"token-hash-{s}", f"127.0.0.1:{20000 + s}", now + 7200, now),
                )
                batch = []
                for j in range(per_session):
                    i = s * per_session + j
                    sha = hashlib.sha256(str(i).encode()).hexdigest()
                    batch.append(FileRecord(file_name(i), i * 1000, sha, 1 << 20, sha))
                store._insert(c, int(cur.lastrowid or 0), batch)
                shas.append(batch[0].sha256)
    while store.maintain(1.0):  # what the running tracker's reaper does in the background
        pass
    store.close()
    return shas


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the load generator (runs in its own process) -------------------------------------------
async def _load(address: str, token: str, rpc: str, concurrency: int, seconds: float, files: int, shas: list[str]) -> dict:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from p2p.v1 import tracker_pb2 as pb
    from p2p.v1 import tracker_pb2_grpc as pb_grpc

    md = (("authorization", f"Bearer {token}"),)
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(address) as channel:
        tracker = pb_grpc.TrackerServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        rng = random.Random(concurrency)

        def request() -> object:
            if rpc == "health":
                return health_pb2.HealthCheckRequest(service="p2p.v1.TrackerService")
            if rpc in CANNED:
                return pb.QueryRequest(name_pattern="canned", page_size=CANNED[rpc])
            if rpc == "common":
                return pb.QueryRequest(name_pattern=rng.choice(COMMON), page_size=50)
            roll = {"title": 0.0, "word": 0.7, "glob": 0.85, "sha": 0.95}.get(rpc, rng.random())  # one kind, or the mix
            i = rng.randrange(files)
            if roll < 0.6:  # a title, as a user types it: a handful of matches
                return pb.QueryRequest(name_pattern=title_of(i), page_size=50)
            if roll < 0.8:  # one word: up to a page of 50 matches
                return pb.QueryRequest(name_pattern=title_of(i).split()[0], page_size=50)
            if roll < 0.9:  # a glob
                return pb.QueryRequest(name_pattern=f"*/{title_of(i).split()[1]}*.{file_name(i).rsplit('.', 1)[1]}", page_size=50)
            return pb.QueryRequest(sha256=rng.choice(shas), page_size=50)

        async def one(req: object) -> None:
            if rpc == "health":
                await health.Check(req, timeout=10)
            else:
                await tracker.Query(req, metadata=md, timeout=10)

        for _ in range(50):  # warm up connection and caches
            await one(request())
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                req = request()  # made outside the timing: the RPC is measured, not the generator
                started = time.perf_counter()
                try:
                    await one(req)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "calls": len(latencies),
        "errors": errors,
    }


def load_main(args: argparse.Namespace) -> None:
    shas = json.loads(Path(args.shas).read_text())
    result = asyncio.run(_load(args.address, args.token, args.rpc, args.concurrency, args.seconds, args.files, shas))
    print(json.dumps(result))


def canned_main(address: str, db: str) -> None:
    """The tracker on db, but Query answers the first page_size of a canned page of 50 real matches:
    auth, logging, messages and threads as always, no store work. Serves until SIGTERM."""
    import threading

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tracker.config import TrackerConfig
    from tracker.server import start_tracker

    tracker = start_tracker(TrackerConfig(listen=address, db=db, lease_seconds=7200, log_level="warning"))
    page, _ = tracker.directory.query("a", "", 50, "")
    assert len(page) == 50, "the store has fewer than 50 matches for 'a'"
    tracker.directory.query = lambda pattern, sha256, page_size, page_token, peer="": (page[:page_size], "")  # type: ignore[method-assign]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    tracker.stop(grace=1)


def bench_login(address: str) -> str:
    """A client session's token, once the tracker at address answers."""
    import grpc

    from p2p.v1 import tracker_pb2 as pb
    from p2p.v1 import tracker_pb2_grpc as pb_grpc

    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=120)
        stub = pb_grpc.TrackerServiceStub(channel)
        return str(stub.Login(pb.LoginRequest(name="bench-client", password="pw"), timeout=60).session_token)


def run_load(address: str, token: str, rpc: str, concurrency: int, seconds: float, files: int, shas_file: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--load",
        address,
        f"--token={token}",  # a token may start with '-', which would read as a flag
        "--rpc",
        rpc,
        "--concurrency",
        str(concurrency),
        "--seconds",
        str(seconds),
        "--files",
        str(files),
        "--shas",
        str(shas_file),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout)


def send_index_100k(address: str) -> float:
    import grpc

    from p2p.v1 import tracker_pb2 as pb
    from p2p.v1 import tracker_pb2_grpc as pb_grpc

    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.TrackerServiceStub(channel)
        token = stub.Login(pb.LoginRequest(name="bench-sender", password="pw", address="127.0.0.1:9"), timeout=30).session_token
        entries = []
        for i in range(100_000):
            sha = hashlib.sha256(f"send-{i}".encode()).hexdigest()
            entries.append(
                pb.FileEntry(name=f"upload/{file_name(i)}", size=i, sha256=sha, chunk_size=1 << 20, chunk_list_sha256=sha)
            )
        batches = [pb.SendIndexRequest(add=entries[i : i + 5000]) for i in range(0, len(entries), 5000)]
        batches[0].mode = pb.INDEX_MODE_REPLACE
        started = time.perf_counter()
        reply = stub.SendIndex(iter(batches), metadata=(("authorization", f"Bearer {token}"),), timeout=300)
        elapsed = time.perf_counter() - started
        assert reply.file_count == 100_000
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--rpc", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--shas", help=argparse.SUPPRESS)
    parser.add_argument("--canned-server", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        args.address = args.load
        load_main(args)
        return
    if args.canned_server:
        canned_main(args.canned_server, args.db)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-tracker-"))
    try:
        started = time.perf_counter()
        shas = fill(work / "tracker.db", args.sessions, args.files)
        shas_file = work / "shas.json"
        shas_file.write_text(json.dumps(shas[:1000]))
        print(f"filled {args.sessions} sessions, {args.files} files in {time.perf_counter() - started:.0f}s", flush=True)
        address = f"127.0.0.1:{free_port()}"
        tracker_bin = shutil.which("p2p-tracker") or str(Path(sys.executable).parent / "p2p-tracker")
        server = subprocess.Popen(
            [tracker_bin, "--listen", address, "--db", str(work / "tracker.db"), "--lease", "7200", "--log-level", "warning"],
            stderr=subprocess.DEVNULL,
        )
        try:
            token = bench_login(address)
            rows = []
            for concurrency in (1, 8, 64):
                trivial = run_load(address, token, "health", concurrency, args.seconds, args.files, shas_file)
                query = run_load(address, token, "query", concurrency, args.seconds, args.files, shas_file)
                rows.append((concurrency, trivial, query))
            kinds = {kind: run_load(address, token, kind, 1, args.seconds, args.files, shas_file) for kind in KINDS}
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        canned = subprocess.Popen([sys.executable, __file__, "--canned-server", address, "--db", str(work / "tracker.db")])
        try:
            token = bench_login(address)
            ceiling = {
                (rpc, concurrency): run_load(address, token, rpc, concurrency, args.seconds, args.files, shas_file)
                for concurrency in (1, 8)
                for rpc in ("health", *CANNED)
            }
            # last: the background indexing of 100,000 new names must not disturb a measurement
            send_seconds = send_index_100k(address)  # the whole tracker but Query: the same SendIndex
        finally:
            canned.send_signal(signal.SIGTERM)
            canned.wait(timeout=30)
        cores = os.cpu_count()
        print(
            f"\nTracker benchmark: {args.sessions} live sessions, {args.files} files, {cores} cores, {args.seconds:.0f}s a cell"
        )
        print(
            f"{'conc':>4} | {'trivial rps':>11} {'p50 ms':>7} {'p99 ms':>7} | {'query rps':>9} {'p50 ms':>7} {'p99 ms':>7} | "
            f"{'rps ratio':>9} {'p99 ratio':>9}"
        )
        for concurrency, t, q in rows:
            print(
                f"{concurrency:>4} | {t['rps']:>11.0f} {t['p50_ms']:>7.2f} {t['p99_ms']:>7.2f} | "
                f"{q['rps']:>9.0f} {q['p50_ms']:>7.2f} {q['p99_ms']:>7.2f} | "
                f"{q['rps'] / t['rps']:>9.2f} {q['p99_ms'] / t['p99_ms']:>9.2f}"
            )
        print(f"\nQuery by kind, concurrency 1 (common: one of {', '.join(COMMON)}):")
        print(f"{'kind':>6} {'share':>6} | {'rps':>6} {'p50 ms':>7} {'p99 ms':>7}")
        for kind, share in KINDS.items():
            r = kinds[kind]
            print(f"{kind:>6} {share:>6.0%} | {r['rps']:>6.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f}")
        print(f"errors: trivial {sum(r[1]['errors'] for r in rows)}, query {sum(r[2]['errors'] for r in rows)}")
        print(f"SendIndex of 100,000 files: {send_seconds:.2f}s")
        print("\nCeiling: the same server stack, Query answering a canned page (no store work), against Health:")
        print(
            f"{'conc':>4} | {'trivial rps':>11} | "
            + " | ".join(f"{f'{n} matches rps':>16} {'ratio':>5}" for n in CANNED.values())
        )
        for concurrency in (1, 8):
            health = ceiling[("health", concurrency)]["rps"]
            cells = " | ".join(
                f"{ceiling[(rpc, concurrency)]['rps']:>16.0f} {ceiling[(rpc, concurrency)]['rps'] / health:>5.2f}"
                for rpc in CANNED
            )
            print(f"{concurrency:>4} | {health:>11.0f} | {cells}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
