"""The benchmarks still run, end to end, at a tiny size: their tables are checked, not their speed
(speed is for the full-size runs, whose numbers go into the issues' notes)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_tracker_benchmark_prints_its_table():
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_tracker.py"), "--sessions", "20", "--files", "4000", "--seconds", "0.3"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for row in ("conc | trivial rps", "errors: trivial 0, query 0", "SendIndex of 100,000 files:", "Ceiling:"):
        assert row in out.stdout, out.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="the transfer benchmark's baseline is curl")
def test_the_transfer_benchmark_prints_its_table(tmp_path: Path):
    script = str(ROOT / "scripts" / "bench_transfer.py")
    cmd = [sys.executable, script, "--size-mib", "4", "--runs", "1", "--small-files", "50", "--dir", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = ("raw TCP", "curl <- python -m http.server", "p2p-peer get, 1 peer", "p2p-peer get, 3 peers", "sha256sum")
    for row in (*rows, "curl <- http.server, one curl for all", "p2p-peer get --all", "p2p-peer put (the folder)"):
        assert row in out.stdout, out.stdout
