"""Swarm benchmark: a flash crowd of downloaders on one seed whose upload is capped.

One seed serves a file (256 MiB by default) at --seed-rate-mib (20 MiB/s) to all its downloaders
together, as a home uplink or a busy server would. --downloaders (3) fetch it at the same moment,
in two ways, rounds alternating:
  * apart: each `p2p-peer get` into a folder no peer shares, so no downloader serves another and
    the seed's rate is split between them (what a plain HTTP mirror gives);
  * as a swarm: each downloader is a serving peer and its `get` writes into its own share, so the
    chunks each has verified are served to the others while it goes on (partial sources).
Reports, as the median of --runs (3): the time until every downloader has the file (sha256
checked), the rate that makes for all of them together, and how much the seed itself sent
(its GetStatus, through `p2p-peer status --json`). The ideal swarm sends every chunk out of the
seed once: size / seed rate. With --leftover-mib N, one more peer shares a copy of the file that a
`get` left after N MiB (stopped half-way): a partial source that never grows, in every round.
Prints a table; numbers, not a test.

    python scripts/bench_swarm.py [--size-mib 256] [--seed-rate-mib 20] [--downloaders 3] [--runs 3] [--leftover-mib 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_transfer import BIN, MiB, free_port, precompile, random_file, stop, wait_healthy


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--seed-rate-mib", type=int, default=20)
    parser.add_argument("--downloaders", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--leftover-mib", type=int, default=0, help="a copy stopped after this many MiB, shared")
    parser.add_argument("--dir", help="work folder (default: a temp folder)")
    args = parser.parse_args()
    precompile()
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-swarm-"))
    work.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    tracker = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, P2P_TRACKER=tracker, P2P_PASSWORD="bench", P2P_LOG_LEVEL="warning")
    peer = [str(BIN / "p2p-peer")]
    try:
        seed_share = work / "seed"
        seed_share.mkdir()
        source = seed_share / "big.bin"
        random_file(source, args.size_mib)
        digest = sha256_of(source)

        procs.append(subprocess.Popen([str(BIN / "p2p-tracker"), "--listen", tracker, "--db", ":memory:"], env=env))
        wait_healthy(tracker)

        def serve(name: str, share: Path, *extra: str) -> None:
            address = f"127.0.0.1:{free_port()}"
            cmd = [*peer, "--name", name, "serve", "--share", str(share), "--listen", address, "--rescan", "1", *extra]
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL))
            wait_healthy(address)

        def sources() -> list[dict]:
            out = subprocess.run(
                [*peer, "--name", "bench", "search", "--sha256", digest, "--json"], env=env, capture_output=True, text=True
            )
            found = json.loads(out.stdout or "[]")
            return found[0]["peers"] if found else []

        def wait_for_sources(names: list[str]) -> None:
            deadline = time.monotonic() + 60
            while sorted(p["name"] for p in sources()) != names:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the tracker never listed exactly {names}")
                time.sleep(0.3)

        def seed_sent() -> int:
            out = subprocess.run([*peer, "--name", "bench", "status", "seed", "--json"], env=env, capture_output=True, text=True)
            return sum(row["bytes_served"] for row in json.loads(out.stdout))

        serve("seed", seed_share, "--max-serve-rate", f"{args.seed_rate_mib}M")
        names = [f"d{i}" for i in range(args.downloaders)]
        shares = {name: work / f"share-{name}" for name in names}
        apart = {name: work / f"apart-{name}" for name in names}
        for name in names:
            shares[name].mkdir()
            apart[name].mkdir()
            serve(name, shares[name])
        wait_for_sources(["seed"])

        def leave_a_partial_copy(mib: int) -> list[str]:
            """A serving peer 'left' into whose share a `get` was stopped after mib MiB."""
            share = work / "share-left"
            share.mkdir()
            serve("left", share)
            get = subprocess.Popen([*peer, "--name", "left", "get", digest, "-o", str(share / "big.bin")], env=env)
            deadline = time.monotonic() + 120
            while sum(p.stat().st_size // 4 for p in share.glob(".big.bin.*.p2p-have")) < mib:
                if time.monotonic() > deadline or get.poll() is not None:
                    raise SystemExit("could not stop a get half-way")
                time.sleep(0.01)
            get.kill()
            get.wait()
            wait_for_sources(["left", "seed"])
            return ["left", "seed"]

        def one_round(folders: dict[str, Path]) -> tuple[float, float, int]:
            """All downloaders at once: (seconds until all are done, median seconds, bytes the seed sent)."""
            sent_before = seed_sent()
            started = time.monotonic()
            running = {
                name: subprocess.Popen(
                    [*peer, "--name", name, "get", digest, "-o", str(folders[name] / "big.bin")],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for name in names
            }
            took: dict[str, float] = {}
            while running:
                for name, proc in list(running.items()):
                    if proc.poll() is not None:
                        took[name] = time.monotonic() - started
                        out, err = proc.communicate()
                        if proc.returncode != 0:
                            raise SystemExit(f"{name}: {err}")
                        said[name] = out.strip().rsplit(" (", 1)[-1].rstrip(")")  # chunks from which source
                        del running[name]
                time.sleep(0.05)
            for name in names:
                result = folders[name] / "big.bin"
                if sha256_of(result) != digest:
                    raise SystemExit(f"{name} got other bytes")
                result.unlink()
            wait_for_sources(listed)  # the swarm's copies withdrawn before the next round
            return max(took.values()), statistics.median(took.values()), seed_sent() - sent_before

        listed = ["seed"]
        if args.leftover_mib:
            listed = leave_a_partial_copy(args.leftover_mib)

        said: dict[str, str] = {}  # the last round's result line of each get
        results: dict[str, list[tuple[float, float, int]]] = {"apart": [], "swarm": []}
        for _ in range(args.runs):
            results["apart"].append(one_round(apart))
            results["swarm"].append(one_round(shares))

        size = args.size_mib * MiB
        ideal = size / (args.seed_rate_mib * MiB)
        print(
            f"\n{args.downloaders} downloaders of {args.size_mib} MiB at once; the seed serves at most "
            f"{args.seed_rate_mib} MiB/s (alone it needs {ideal:.1f} s for one copy); median of {args.runs}"
            + (f"; a copy left after {args.leftover_mib} MiB is shared too" if args.leftover_mib else "")
            + "\n"
        )
        print("| mode | all done s | median get s | MiB/s, all together | seed sent (copies) | vs apart |")
        print("|---|---|---|---|---|---|")
        base = statistics.median(r[0] for r in results["apart"])
        for mode, rows in results.items():
            done = statistics.median(r[0] for r in rows)
            each = statistics.median(r[1] for r in rows)
            sent = statistics.median(r[2] for r in rows)
            rate = args.downloaders * args.size_mib / done
            print(f"| {mode} | {done:.1f} | {each:.1f} | {rate:.0f} | {sent / size:.2f} | {base / done:.2f}x |")
        print("\nWhere the chunks of the last swarm round came from:")
        for name in names:
            print(f"  {name}: {said[name]}")
    finally:
        stop(procs)
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
