"""Share changes waiting to be published: merged by name, and put back when publishing failed."""

from __future__ import annotations

from peer.manifest import Manifest
from peer.share import ShareChanges, SharedFile
from peer.watcher import PendingChanges


def shared(name: str, version: int) -> SharedFile:
    return SharedFile(name, version, 1, Manifest("0" * 64, 0, 1 << 20, ()))


def test_what_could_not_be_published_goes_back_and_newer_findings_win():
    pending = PendingChanges()
    pending.add(ShareChanges([shared("a", 1), shared("b", 1), shared("c", 1)], ["gone", "back"]))
    taken = pending.take()
    assert pending.take() == ShareChanges()
    # while the publish was failing, the watcher found: b changed again, c deleted, 'back' re-added
    pending.add(ShareChanges([shared("b", 2), shared("back", 2)], ["c"]))
    pending.restore(taken)
    now = pending.take()
    assert sorted((f.name, f.mtime_ns) for f in now.added) == [("a", 1), ("b", 2), ("back", 2)]
    assert now.removed == ["c", "gone"]
