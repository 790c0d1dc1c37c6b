"""The README's main command: the demo runs end to end and leaves no process behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("flags", [[], ["--tls"]], ids=["plaintext", "tls"])
def test_demo_runs_every_step_and_cleans_up(flags):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), *flags], capture_output=True, text=True, env=env, timeout=280
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for step in (
        "starting the tracker",
        "dave downloads",
        "sha256 of the download",
        "uploads a report",
        "partial source",
        "grpcurl",
        "demo complete",
    ):
        assert step in out.stdout
    assert "p2p.v1.TrackerService" in out.stdout and "p2p.v1.PeerService" in out.stdout
    assert out.stdout.count("exited with 0") == 7  # tracker and six peers stopped cleanly
    for name in ("erin", "frank"):
        assert f"  {name}: " in out.stdout and "film-48MiB.bin" in out.stdout
    assert ("over TLS" in out.stdout) == bool(flags)
