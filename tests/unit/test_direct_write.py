"""Direct (page-cache-bypassing) chunk writes: the bytes land, only aligned blocks go that way,
and a download's chunks are not left in the page cache."""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import subprocess
from pathlib import Path

import pytest

from peer.chunk_store import PartialFile, Write
from peer.direct_write import ALIGN, DirectWriter
from tests.unit.test_downloader import make

CHUNK = 64 * 1024
DATA = os.urandom(5 * CHUNK + 1000)  # five whole chunks and a short last one


def resident_pages(path: Path) -> list[bool]:
    """Which pages of path are in the page cache (mincore on a mapping of it)."""
    size = path.stat().st_size
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    vector = ctypes.create_string_buffer((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE)
    with open(path, "rb") as f:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), 0)
        assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            assert libc.mincore(address, size, vector) == 0, os.strerror(ctypes.get_errno())
        finally:
            libc.munmap(address, size)
    return [bool(b & 1) for b in vector.raw]


def direct_io_works(folder: Path) -> bool:
    probe = folder / "probe"
    probe.touch()
    writer = DirectWriter(probe)
    try:
        return writer.write(bytes(ALIGN), 0)
    finally:
        writer.close()


def test_aligned_blocks_are_written_and_anything_else_is_left_to_the_caller(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(bytes(3 * ALIGN))
    writer = DirectWriter(path)
    if not writer.write(b"a" * ALIGN, ALIGN):
        pytest.skip("this filesystem takes no O_DIRECT writes")
    assert not writer.write(b"b" * (ALIGN - 1), 0)  # a size that is not whole blocks
    assert not writer.write(b"c" * ALIGN, 100)  # an offset that is not a block's
    assert not writer.write(b"", 0)
    assert writer.write(memoryview(b"xy" * ALIGN)[ALIGN:], 2 * ALIGN)  # a view at any address
    writer.close()
    assert not writer.write(b"d" * ALIGN, 0)  # closed: nothing more goes this way
    assert path.read_bytes() == bytes(ALIGN) + b"a" * ALIGN + b"xy" * (ALIGN // 2)


def filesystem_type(path: Path) -> str:
    return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=True).stdout.strip()


def test_a_downloads_chunks_bypass_the_page_cache_and_the_file_checks_out(tmp_path):
    if not direct_io_works(tmp_path):
        pytest.skip("this filesystem takes no O_DIRECT writes")
    if filesystem_type(tmp_path) == "tmpfs":
        pytest.skip("a tmpfs is the page cache itself: O_DIRECT writes land there too")
    manifest, _ = make(DATA)
    partial = PartialFile(tmp_path / "out", manifest)
    for index in reversed(range(manifest.chunk_count)):
        data = DATA[index * CHUNK : (index + 1) * CHUNK]
        assert partial.write_chunk(index, data) is Write.WRITTEN
    staged = partial.part_path
    resident = resident_pages(staged)
    per_chunk = CHUNK // mmap.PAGESIZE
    assert not any(resident[: 5 * per_chunk]), "whole chunks were written through the page cache"
    assert all(resident[5 * per_chunk :]), "the short last chunk is an ordinary write"
    done = partial.finish()
    assert hashlib.sha256(done.read_bytes()).hexdigest() == manifest.sha256
