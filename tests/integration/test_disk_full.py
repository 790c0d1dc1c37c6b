"""A download or upload onto a full disk fails up front with RESOURCE_EXHAUSTED, leaving nothing half-written."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2p_common.errors import ResourceExhausted
from peer.transfers import fetch, resolve

MiB = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of the test's own (needs root, as CI and these machines have; skipped elsewhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_get_onto_a_full_disk_is_refused_before_fetching(start_peer_at, client, small_disk):
    start_peer_at("src", {"big.bin": bytes(range(256)) * (8 * MiB // 256)})
    with pytest.raises(ResourceExhausted, match="not enough disk space"):
        fetch(client, resolve(client, "big.bin"), small_disk / "big.bin")
    assert list(small_disk.iterdir()) == []  # no file, no staging leftovers
