"""A download written to a pipe in file order as it arrives: `p2p-peer get NAME -o - | tar x`.

Sources deliver chunks in any order, and a pipe takes bytes only in order, so the download is
staged in a file as usual and a thread copies its chunks out in file order, each once it is
verified and written. The reader gets only verified bytes and can start before the end; a slow
reader holds up nothing but this copy (the staged file is the buffer).
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

from peer import chunking


class InOrderOutput:
    """Copies the chunks of the file staged at part_path to out_fd in file order; call held(i) as
    chunk i is verified and written (any thread, any order), then close() to wait for the rest,
    or abandon() when the download failed.

    When the reader goes away (EPIPE), it sets cancel, which stops the download, and close()
    raises BrokenPipeError."""

    def __init__(self, part_path: Path, size: int, chunk_size: int, out_fd: int, cancel: threading.Event):
        self.part_path = part_path
        self.size = size
        self.chunk_size = chunk_size
        self.out_fd = out_fd
        self.cancel = cancel
        self.written = 0  # bytes sent to out_fd
        self._count = chunking.chunk_count(size, chunk_size)
        self._held = bytearray(self._count)
        self._next = 0  # the next chunk to send
        self._fd = -1  # the staged file, opened at the first held chunk (it outlives its rename)
        self._cond = threading.Condition()
        self._stopping = False
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._copy, name="in-order-output", daemon=True)
        self._thread.start()

    def held(self, index: int) -> None:
        with self._cond:
            if self._fd < 0:
                self._fd = os.open(self.part_path, os.O_RDONLY)
            self._held[index] = 1
            if index == self._next:
                self._cond.notify()

    def close(self) -> None:
        """Wait until every held chunk is out (all of them, once the download is complete)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Stop copying without waiting: a reader that stopped reading must not hold up a failed or
        interrupted download's exit (its thread, blocked writing, ends with the process)."""
        with self._cond:
            self._stopping = True
            self._count = self._next  # nothing more to send
            self._cond.notify()

    @property
    def broken(self) -> bool:
        """The reader went away."""
        return isinstance(self._error, BrokenPipeError)

    def _copy(self) -> None:
        while True:
            with self._cond:
                while self._next < self._count and not self._held[self._next] and not self._stopping:
                    self._cond.wait()
                if self._next >= self._count or not self._held[self._next]:
                    return  # all out, or stopping with the next chunk not held
                index, fd = self._next, self._fd
            try:
                self._send(fd, index)
            except OSError as exc:
                self._error = BrokenPipeError(errno.EPIPE, "output closed") if exc.errno == errno.EPIPE else exc
                self.cancel.set()
                return
            with self._cond:
                self._next += 1

    def _send(self, fd: int, index: int) -> None:
        length = chunking.chunk_length(self.size, self.chunk_size, index)
        data = memoryview(os.pread(fd, length, index * self.chunk_size))
        if len(data) != length:  # the staged file is ours alone; short means someone cut it
            raise OSError(errno.EIO, f"staged chunk {index} is {len(data)} bytes, not {length}")
        while data:
            sent = os.write(self.out_fd, data)
            data = data[sent:]
            self.written += sent
