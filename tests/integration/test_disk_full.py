"""A download or upload onto a full disk fails up front with RESOURCE_EXHAUSTED, leaving nothing
half-written; an upload into a share the receiver cannot write is PERMISSION_DENIED."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from p2p_common.errors import PermissionDenied, ResourceExhausted
from peer.transfers import fetch, push, resolve

MiB = 1 << 20


@contextmanager
def _changed(folder: Path, change: list[str], undo: list[str], what: str) -> Iterator[Path]:
    """folder with change applied (a command needing root or a filesystem feature: skipped where it
    fails), undone at the end."""
    done = subprocess.run(change, capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot {what} here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(undo, check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of the test's own (needs root, as CI and these machines have)."""
    mount = tmp_path / "small"
    mount.mkdir()
    mounting = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)]
    with _changed(mount, mounting, ["umount", "-l", str(mount)], "mount a small tmpfs") as disk:
        yield disk


@pytest.fixture
def immutable_share(tmp_path: Path) -> Iterator[Path]:
    """A share folder nothing can be created in, root included (chattr +i, on filesystems that have it)."""
    share = tmp_path / "frozen"
    share.mkdir()
    (share / ".p2p").mkdir()  # the peer's own state stays writable: only the share's top is frozen
    with _changed(share, ["chattr", "+i", str(share)], ["chattr", "-i", str(share)], "make a folder immutable") as frozen:
        yield frozen


def test_an_upload_into_a_share_it_cannot_write_is_permission_denied(start_peer_at, client, tmp_path, immutable_share):
    """The receiver's OSError becomes a status that says what is wrong without its paths (it was
    UNKNOWN, carrying the receiver's staging path)."""
    start_peer_at("inbox", {}, allow_uploads=True, share=immutable_share)
    local = tmp_path / "f.bin"
    local.write_bytes(b"x" * 5000)
    refused = r"inbox: this peer cannot write into its share \(Operation not permitted\)"
    with pytest.raises(PermissionDenied, match=refused) as info:
        push(client, local, "inbox")
    assert str(immutable_share) not in str(info.value)
    assert [p.name for p in immutable_share.iterdir()] == [".p2p"]


def test_get_onto_a_full_disk_is_refused_before_fetching(start_peer_at, client, small_disk):
    start_peer_at("src", {"big.bin": bytes(range(256)) * (8 * MiB // 256)})
    with pytest.raises(ResourceExhausted, match="not enough disk space"):
        fetch(client, resolve(client, "big.bin"), small_disk / "big.bin")
    assert list(small_disk.iterdir()) == []  # no file, no staging leftovers


def test_get_and_put_through_a_pipe_say_when_tmpdir_has_no_room(start_peer_at, tracker, small_disk):
    """`get -o -` and `put -` stage in TMPDIR: a full one is named, with the fix, not a staging path."""
    start_peer_at("src", {"big.bin": bytes(range(256)) * (8 * MiB // 256)}, allow_uploads=True)
    env = dict(os.environ, P2P_TRACKER=f"127.0.0.1:{tracker.port}", P2P_PASSWORD="pw", TMPDIR=str(small_disk))
    peer = [str(Path(sys.executable).parent / "p2p-peer"), "--name", "piper"]
    got = subprocess.run([*peer, "get", "big.bin", "-o", "-"], capture_output=True, text=True, env=env, timeout=60)
    assert got.returncode == 1 and got.stdout == ""
    no_room = f"no room in {small_disk} to stage"
    assert got.stderr == f"p2p-peer get: {no_room} the 8.0 MiB file: point TMPDIR at a folder with more\n"
    sent = subprocess.run(
        [*peer, "put", "-", "--as", "z.bin", "--to", "src"], input=bytes(6 * MiB), capture_output=True, env=env, timeout=60
    )
    assert sent.returncode == 1 and sent.stderr.decode().startswith(f"p2p-peer put: {no_room} standard input (")
    assert list(small_disk.iterdir()) == []  # the staging folders are gone
