"""Scratch folders in TMPDIR for `get -o -` and `put -`, and the removal of those left behind.

A folder is removed when its command ends, but not when the command is killed outright (SIGKILL,
the OOM killer, a power cut), and what it staged can be many GiB. Each folder holds a lock for as
long as its command runs; the next command removes the folders whose lock nobody holds.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from p2p_common import process_lock
from p2p_common.errors import ResourceExhausted

log = logging.getLogger(__name__)

PREFIX = "p2p-scratch-"
LOCK_NAME = "holder.lock"
# a folder younger than this is left alone: its command may not have taken its lock yet
STALE_AFTER_SECONDS = 60.0


@contextmanager
def scratch_folder() -> Iterator[Path]:
    """A new folder in TMPDIR, removed at the end; abandoned ones of earlier commands go first."""
    remove_abandoned(Path(tempfile.gettempdir()))
    with tempfile.TemporaryDirectory(prefix=PREFIX) as folder:
        fd = process_lock.claim(Path(folder) / LOCK_NAME)
        try:
            yield Path(folder)
        finally:
            os.close(fd)


def remove_abandoned(root: Path, now: float | None = None) -> list[str]:
    """Remove the scratch folders in root that no running command holds; their names."""
    now = time.time() if now is None else now
    try:
        entries = [e for e in os.scandir(root) if e.name.startswith(PREFIX) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    removed = []
    for entry in entries:
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_SECONDS:
                continue
            fd = process_lock.claim(Path(entry.path) / LOCK_NAME)
        except (process_lock.HeldElsewhere, OSError):  # running, or another user's
            continue
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
        finally:
            os.close(fd)
        log.info("removed %s, left by a command that was killed", entry.path)
        removed.append(entry.name)
    return removed


def no_room_to_stage(what: str) -> ResourceExhausted:
    """What to say when TMPDIR cannot hold what a command stages."""
    return ResourceExhausted(f"no room in {tempfile.gettempdir()} to stage {what}: point TMPDIR at a folder with more")
