"""Folder events (inotify) and the share looking again at just the names they report."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from peer.folder_events import FolderEvents
from peer.share import Share
from tests.helpers import wait_for


def settle(path: Path) -> None:
    old = time.time() - 10
    os.utime(path, (old, old))


@pytest.fixture
def events():
    woken = threading.Event()
    watching = FolderEvents.open(woken.set)
    if watching is None:
        pytest.skip("no inotify on this system")
    watching.woken = woken  # type: ignore[attr-defined]
    yield watching
    watching.close()


def test_events_name_what_changed_relative_to_the_share(tmp_path, events):
    (tmp_path / "sub").mkdir()
    events.watch(str(tmp_path), "")
    events.watch(str(tmp_path / "sub"), "sub/")
    (tmp_path / "sub" / "new.txt").write_text("x")
    (tmp_path / "top.txt").write_text("y")
    (tmp_path / "moved-in").mkdir()
    assert events.woken.wait(5)
    seen: set[str] = set()
    wait_for(lambda: seen.update(events.take() or ()) or {"sub/new.txt", "top.txt", "moved-in/"} <= seen, what="the events")
    (tmp_path / "top.txt").unlink()
    wait_for(lambda: "top.txt" in (events.take() or ()), what="the removal")
    assert events.take() == set()  # taken: nothing more


def test_a_folder_moved_keeps_its_watch_under_its_new_name(tmp_path, events):
    (tmp_path / "old").mkdir()
    events.watch(str(tmp_path), "")
    events.watch(str(tmp_path / "old"), "old/")
    (tmp_path / "old").rename(tmp_path / "new")
    events.watch(str(tmp_path / "new"), "new/")  # as a walk of the moved folder does
    (tmp_path / "new" / "f.txt").write_text("z")
    wait_for(lambda: "new/f.txt" in (events.take() or ()), what="the file, under the folder's new name")


def make_share(root: Path, files: dict[str, str]) -> Share:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
        settle(root / name)
    share = Share(root)
    share.scan()
    return share


def test_looking_again_at_names_finds_files_new_changed_and_gone(tmp_path):
    root = tmp_path / "share"
    root.mkdir()
    share = make_share(root, {"keep.txt": "k", "edit.txt": "e1", "drop.txt": "d", "old/a.txt": "a", "old/b/c.txt": "c"})
    try:
        (root / "new.txt").write_text("n")
        settle(root / "new.txt")
        (root / "edit.txt").write_text("e2, longer")
        settle(root / "edit.txt")
        (root / "drop.txt").unlink()
        (root / "old").rename(root / "moved")  # a folder moved within the share: gone here, new there
        (root / "writing.txt").write_text("half")  # modified just now: still being written
        (root / ".hidden").write_text("h")
        settle(root / ".hidden")
        names = {"new.txt", "edit.txt", "drop.txt", "old/", "moved/", "writing.txt", ".hidden", "../escape", "keep.txt"}
        changes, unsettled = share.rescan(names)
        assert sorted(f.name for f in changes.added) == ["edit.txt", "moved/a.txt", "moved/b/c.txt", "new.txt"]
        assert sorted(changes.removed) == ["drop.txt", "old/a.txt", "old/b/c.txt"]  # edit.txt is replaced
        assert unsettled == {"writing.txt"}
        assert sorted(f.name for f in share.files()) == ["edit.txt", "keep.txt", "moved/a.txt", "moved/b/c.txt", "new.txt"]
        assert share.by_name("edit.txt").manifest.size == len("e2, longer")
        settle(root / "writing.txt")
        assert [f.name for f in share.rescan({"writing.txt"})[0].added] == ["writing.txt"]
        assert not share.scan()  # a whole walk agrees: nothing left to find
    finally:
        share.close()


def test_a_folder_replaced_by_a_file_takes_what_was_under_it(tmp_path):
    root = tmp_path / "share"
    root.mkdir()
    share = make_share(root, {"x/one.txt": "1", "x/two.txt": "2"})
    try:
        for name in ("one.txt", "two.txt"):
            (root / "x" / name).unlink()
        (root / "x").rmdir()
        (root / "x").write_text("now a file")
        settle(root / "x")
        changes, _ = share.rescan({"x/", "x"})  # the folder's removal, the file's creation
        assert [f.name for f in changes.added] == ["x"] and sorted(changes.removed) == ["x/one.txt", "x/two.txt"]
    finally:
        share.close()


def test_a_walk_hands_each_folder_to_be_watched_before_listing_it(tmp_path):
    root = tmp_path / "share"
    (root / "a" / "b").mkdir(parents=True)
    (root / ".hidden").mkdir()
    share = Share(root)
    try:
        watched: list[tuple[str, str]] = []
        share.on_folder = lambda folder, prefix: watched.append((os.path.relpath(folder, root), prefix))
        share.scan()
        assert sorted(watched) == [(".", ""), ("a", "a/"), ("a/b", "a/b/")]  # not the hidden one, nor the state folder
    finally:
        share.close()


def test_a_folder_moved_in_is_handed_over_in_slices_as_it_is_hashed(tmp_path):
    root = tmp_path / "share"
    root.mkdir()
    share = make_share(root, {})
    try:
        for i in range(3):
            (root / "big" / f"{i}.bin").parent.mkdir(exist_ok=True)
            (root / "big" / f"{i}.bin").write_bytes(bytes([i]) * 1000)
            settle(root / "big" / f"{i}.bin")
        slices: list[list[str]] = []
        left, _ = share.rescan({"big/"}, 0, lambda changes: slices.append([f.name for f in changes.added]) or True)
        assert sorted(slices) == [["big/0.bin"], ["big/1.bin"], ["big/2.bin"]] and not left
        assert len(share.files()) == 3
    finally:
        share.close()


def test_a_folder_turned_into_a_symlink_out_of_the_share_is_not_followed(tmp_path):
    root, outside = tmp_path / "share", tmp_path / "outside"
    root.mkdir()
    (outside / "secret").mkdir(parents=True)
    (outside / "secret" / "key.txt").write_text("private")
    settle(outside / "secret" / "key.txt")
    share = make_share(root, {"a/photo.jpg": "p"})
    try:
        (root / "a" / "photo.jpg").unlink()
        (root / "a").rmdir()
        (root / "a").symlink_to(outside / "secret")  # after the events for a/ were queued
        changes, _ = share.rescan({"a/photo.jpg", "a/key.txt", "a/"})
        assert changes.added == [] and changes.removed == ["a/photo.jpg"]
        assert share.files() == []
    finally:
        share.close()


def test_a_download_into_the_share_is_shared_partially_from_its_chunk_record_events(tmp_path, monkeypatch):
    from peer import chunking
    from peer.chunk_store import PartialFile, StagedFile
    from peer.manifest import Manifest

    monkeypatch.setattr(StagedFile, "REREAD_SECONDS", 0.0)
    root = tmp_path / "share"
    root.mkdir()
    data = os.urandom(3 * 64 * 1024)
    (tmp_path / "source.bin").write_bytes(data)
    manifest = Manifest.from_hashes(chunking.hash_file(tmp_path / "source.bin", chunk_size=64 * 1024))
    share = make_share(root, {})
    try:
        partial = PartialFile(root / "films" / "dl.bin", manifest)
        partial.write_chunk(1, data[64 * 1024 : 128 * 1024])
        record = next(p.name for p in (root / "films").iterdir() if p.name.endswith(".p2p-have"))
        (staged,) = share.rescan({f"films/{record}"})[0].added
        assert (staged.name, staged.partial) == ("films/dl.bin", True)
        partial.discard()  # the download given up: its staged files removed
        assert share.rescan({f"films/{record}"})[0].removed == ["films/dl.bin"] and share.published() == []
    finally:
        share.close()
