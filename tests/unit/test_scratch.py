"""Scratch folders of `get -o -` and `put -`: removed at the end, and after a SIGKILL by the next command."""

from __future__ import annotations

import os
import time
from pathlib import Path

from p2p_common import process_lock
from peer import scratch


def folder(root: Path, name: str, age: float) -> Path:
    path = root / f"{scratch.PREFIX}{name}"
    path.mkdir()
    (path / "download.p2p-part").write_bytes(b"x" * 1000)
    when = time.time() - age
    os.utime(path, (when, when))
    return path


def test_only_folders_no_running_command_holds_are_removed(tmp_path, monkeypatch):
    killed = folder(tmp_path, "killed", age=3600)  # its command died: nobody holds its lock
    running = folder(tmp_path, "running", age=3600)
    held = process_lock.claim(running / scratch.LOCK_NAME)
    just_made = folder(tmp_path, "new", age=0)  # its command may not hold its lock yet
    other = tmp_path / "someone-elses"
    other.mkdir()
    try:
        assert scratch.remove_abandoned(tmp_path) == [killed.name]
        assert not killed.exists() and running.exists() and just_made.exists() and other.exists()
    finally:
        os.close(held)
    os.utime(running, (time.time() - 3600, time.time() - 3600))  # its lock file made it young again

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with scratch.scratch_folder() as mine:  # sweeps first: running's command has ended now
        assert mine.parent == tmp_path and not running.exists()
        (mine / "stdin").write_bytes(b"staged")
    assert not mine.exists() and just_made.exists()
