"""What changed under the share, as the kernel tells it (Linux inotify), between two walks.

A walk of a million files takes ~8 s of CPU, so walks alone of such a share were spaced ~80 s
apart (peer.watcher keeps them to a share of a core): a file dropped into it waited that long to
be published. With a watch on each folder, the watcher looks at just the names that changed, as
Syncthing does: published within ~2 s. Walks go on, rarer, as the safety net: for a queue that
overflowed, folders past the system's watch limit, and systems without inotify (where this is
simply absent).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import struct
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ISDIR = 0x40000000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
# what makes a name worth a look: written and closed, created (a folder), moved, removed, touched.
# Not each write (IN_MODIFY): that made every write into the share, a `get` of 2,000 files into
# it, pay for an event; a file rewritten in place is withdrawn at its close (and until then,
# serving it fails its unchanged check rather than send other bytes)
WATCHED = IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


class FolderEvents:
    """Watches on folders of the share; a thread of its own reads their events and collects the
    names (relative to the share) that changed, then calls on_change. Not for the share's own
    state folder: the caller watches only what its walk shares."""

    def __init__(self, fd: int, add_watch: Callable[[int, bytes, int], int], on_change: Callable[[], None]):
        self._fd = fd
        self._add_watch = add_watch
        self._on_change = on_change
        self._lock = threading.Lock()
        self._prefixes: dict[int, str] = {}  # watch -> the folder's name in the share ("" for the root, else "a/b/")
        self._changed: set[str] = set()
        self._overflowed = False  # events were lost: only a walk knows what changed
        self._full = False  # the watch limit was reached: some folders are seen by walks only
        self._stop = threading.Event()
        self._stop_r, self._stop_w = os.pipe()  # written by close(): the reader's poll returns at once
        self._reader = threading.Thread(target=self._read, name="folder-events", daemon=True)
        self._reader.start()

    @classmethod
    def open(cls, on_change: Callable[[], None]) -> FolderEvents | None:
        """Watching, or None where the system has no inotify (or refuses another instance)."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            init, add_watch = libc.inotify_init1, libc.inotify_add_watch
        except (OSError, AttributeError):  # not Linux
            return None
        add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        fd = init(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            log.warning("cannot watch the share for changes (%s): they are seen at rescans only", os.strerror(ctypes.get_errno()))
            return None
        return cls(fd, add_watch, on_change)

    def watch(self, folder: str, prefix: str) -> None:
        """Watch folder, whose files are named prefix + their name in the share (a watch already
        on that folder, moved since, takes the new prefix)."""
        if self._stop.is_set():
            return
        wd = self._add_watch(self._fd, os.fsencode(folder), WATCHED | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)
        if wd >= 0:
            with self._lock:
                self._prefixes[wd] = prefix
            return
        err = ctypes.get_errno()
        if err == errno.ENOSPC and not self._full:
            self._full = True
            log.warning(
                "the system's limit of folder watches is reached (fs.inotify.max_user_watches): changes in some"
                " folders of the share are seen at rescans only"
            )

    def take(self) -> set[str] | None:
        """The names that changed since the last take, a folder's with a trailing "/"; None when
        events were lost meanwhile (the queue overflowed): a walk must find what changed."""
        with self._lock:
            changed, self._changed = self._changed, set()
            overflowed, self._overflowed = self._overflowed, False
        return None if overflowed else changed

    def close(self) -> None:
        self._stop.set()
        os.write(self._stop_w, b"x")
        self._reader.join(timeout=5)
        for fd in (self._fd, self._stop_r, self._stop_w):
            os.close(fd)

    def _read(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll():
                continue
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                continue
            if self._parse(data):
                self._on_change()

    def _parse(self, data: bytes) -> bool:
        """Record the names in data; True if any."""
        any_change = False
        pos = 0
        with self._lock:
            while pos + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
                raw = data[pos + _EVENT.size : pos + _EVENT.size + length].rstrip(b"\0")
                pos += _EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    self._overflowed = any_change = True
                elif mask & IN_IGNORED:  # the folder is gone (its removal was reported in its parent)
                    self._prefixes.pop(wd, None)
                elif (prefix := self._prefixes.get(wd)) is not None and raw:
                    self._changed.add(prefix + os.fsdecode(raw) + ("/" if mask & IN_ISDIR else ""))
                    any_change = True
        return any_change
