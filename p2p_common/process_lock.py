"""One process at a time for a resource (a peer's share, a tracker's database): an flock on a file
beside it, which the system drops when the process dies however it dies, with the holder's pid
written in for the message that refuses a second."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class HeldElsewhere(Exception):
    """Another process holds the lock; holder is its pid as it wrote it ("?" if unreadable)."""

    def __init__(self, holder: str):
        super().__init__(f"held by pid {holder}")
        self.holder = holder


def claim(path: Path) -> int:
    """The descriptor holding path's lock until it is closed; HeldElsewhere if another has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise HeldElsewhere(holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
