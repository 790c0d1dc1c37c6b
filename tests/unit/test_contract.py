"""The wire contract: generated code is fresh, buf lint passes, enums have an _UNSPECIFIED zero."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from p2p.v1 import peer_pb2, tracker_pb2

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))


def test_generated_code_is_fresh(tmp_path):
    from gen_protos import generate

    generate(tmp_path)
    for fresh in (tmp_path / "p2p" / "v1").iterdir():
        committed = ROOT / "proto" / "p2p" / "v1" / fresh.name
        assert committed.exists(), f"{fresh.name} is not committed"
        assert committed.read_text() == fresh.read_text(), f"{fresh.name} is stale: run python scripts/gen_protos.py"


def test_buf_lint_passes():
    buf = shutil.which("buf") or str(Path(sys.executable).parent / "buf")
    out = subprocess.run([buf, "lint"], cwd=ROOT / "proto", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_enum_starts_with_unspecified():
    for module in (tracker_pb2, peer_pb2):
        for enum in module.DESCRIPTOR.enum_types_by_name.values():
            assert enum.values_by_number[0].name.endswith("_UNSPECIFIED")


def test_package_is_p2p_v1():
    assert tracker_pb2.DESCRIPTOR.package == "p2p.v1" and peer_pb2.DESCRIPTOR.package == "p2p.v1"
