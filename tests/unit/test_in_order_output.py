"""InOrderOutput: chunks held in any order go out to a pipe in file order, and a reader that
leaves stops the download."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from peer.in_order_output import InOrderOutput


def staged(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    data = bytes((i * 7 + i // 251) % 256 for i in range(size))
    path = tmp_path / "staged"
    path.write_bytes(data)
    return path, data


def read_all(fd: int, into: bytearray) -> threading.Thread:
    def run() -> None:
        while block := os.read(fd, 65536):
            into.extend(block)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_chunks_held_out_of_order_go_out_in_file_order(tmp_path):
    path, data = staged(tmp_path, 10 * 1000 + 17)  # 11 chunks, the last one short
    r, w = os.pipe()
    got = bytearray()
    reader = read_all(r, got)
    out = InOrderOutput(path, len(data), 1000, w, threading.Event())
    for index in (3, 10, 1, 0, 2, 9, 8, 4, 7, 5, 6):
        out.held(index)
    out.close()
    os.close(w)
    reader.join(timeout=10)
    os.close(r)
    assert bytes(got) == data and out.written == len(data)


def test_close_sends_only_the_held_prefix_when_the_download_stopped(tmp_path):
    path, data = staged(tmp_path, 5000)
    r, w = os.pipe()
    got = bytearray()
    reader = read_all(r, got)
    out = InOrderOutput(path, len(data), 1000, w, threading.Event())
    for index in (0, 1, 3):  # chunk 2 never came
        out.held(index)
    out.close()
    os.close(w)
    reader.join(timeout=10)
    os.close(r)
    assert bytes(got) == data[:2000]


def test_a_reader_that_leaves_cancels_the_download(tmp_path):
    path, data = staged(tmp_path, 300_000)
    r, w = os.pipe()
    os.close(r)  # the reader is gone (`| head` that has read enough)
    cancel = threading.Event()
    out = InOrderOutput(path, len(data), 100_000, w, cancel)
    out.held(0)
    assert cancel.wait(10)
    with pytest.raises(BrokenPipeError):
        out.close()
    assert out.broken
    os.close(w)


def test_an_empty_file_needs_no_chunk(tmp_path):
    r, w = os.pipe()
    out = InOrderOutput(tmp_path / "never-made", 0, 1 << 20, w, threading.Event())
    out.close()
    os.close(w)
    assert os.read(r, 10) == b""
    os.close(r)
