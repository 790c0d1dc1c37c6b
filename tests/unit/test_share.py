"""The share scanner: settled files only, never symlinks or staging files, changes reported."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path

import pytest

from p2p_common.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from peer.manifest import Manifest
from peer.share import HashCache, Share
from peer.share_filter import ShareFilter


def settle(path: Path) -> None:
    old = time.time() - 10
    os.utime(path, (old, old))


def test_files_still_being_written_wait_until_settled(tmp_path):
    root = tmp_path / "share"
    root.mkdir()
    (root / "growing.bin").write_bytes(b"half")  # modified just now
    share = Share(root)
    try:
        assert share.scan().added == [] and share.files() == []
        settle(root / "growing.bin")
        assert [f.name for f in share.scan().added] == ["growing.bin"]
    finally:
        share.close()


def test_a_missing_share_is_made_and_a_file_is_refused(tmp_path):
    share = Share(tmp_path / "new" / "share")
    share.close()
    assert (tmp_path / "new" / "share").is_dir()
    (tmp_path / "film.mkv").write_bytes(b"frames")
    with pytest.raises(InvalidArgument, match=r"film\.mkv is a file; share the folder holding it"):
        Share(tmp_path / "film.mkv")
    assert (tmp_path / "film.mkv").read_bytes() == b"frames"


def test_symlinks_state_and_staging_files_are_never_shared(tmp_path, caplog):
    outside = tmp_path / "secret.txt"
    outside.write_text("not for sharing")
    root = tmp_path / "share"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "ok.txt").write_text("fine")
    (root / "link.txt").symlink_to(outside)
    (root / "linkdir").symlink_to(tmp_path)
    (root / ".x.bin.0123456789abcdef.p2p-part").write_bytes(b"partial")
    (root / "tab\there.txt").write_text("a name no peer could use safely")
    (root / "back\\slash.txt").write_text("nor this one")
    (root / "invoice\u202efdp.exe").write_text("shown as invoiceexe.pdf")
    latin1 = os.fsencode(root) + b"/caf\xe9.txt"  # a name in another encoding than UTF-8
    with open(latin1, "wb") as f:
        f.write(b"no protobuf string can carry its name")
    for p in root.rglob("*"):
        if not p.is_symlink():
            settle(p)
    share = Share(root)
    try:
        share.scan()
        assert [f.name for f in share.files()] == ["sub/ok.txt"]  # one bad name does not stop the others
        assert not share.scan()  # and they stay out on every rescan
        warned = sorted(r.getMessage() for r in caplog.records if r.getMessage().startswith("not sharing"))
        assert warned == [  # once each, not once a scan
            "not sharing 'back\\\\slash.txt': its name contains a backslash (a folder separator on Windows)",
            "not sharing 'caf\\udce9.txt': its name is not UTF-8 (written in another encoding): rename it to share it",
            "not sharing 'invoice\\u202efdp.exe': its name contains a bidirectional control character (U+202A-U+202E,"
            " U+2066-U+2069), which makes a name display as another",
            "not sharing 'tab\\there.txt': its name contains a NUL or control character",
        ]
    finally:
        share.close()


def test_changes_are_reported_as_added_and_removed(tmp_path):
    root = tmp_path / "share"
    root.mkdir()
    (root / "a.txt").write_text("a")
    settle(root / "a.txt")
    share = Share(root)
    try:
        assert [f.name for f in share.scan().added] == ["a.txt"]
        assert not share.scan()  # nothing changed
        (root / "a.txt").unlink()
        (root / "b.txt").write_text("b")
        settle(root / "b.txt")
        changes = share.scan()
        assert [f.name for f in changes.added] == ["b.txt"] and changes.removed == ["a.txt"]
    finally:
        share.close()


def test_content_stays_served_while_any_copy_remains(tmp_path):
    root = tmp_path / "share"
    root.mkdir()

    def write(name: str) -> None:
        (root / name).write_text("same bytes")
        settle(root / name)

    for name in ("a.txt", "b.txt", "c.txt"):
        write(name)
    share = Share(root)
    try:
        share.scan()
        sha = share.files()[0].manifest.sha256
        assert share.by_sha256(sha).name in {"a.txt", "b.txt", "c.txt"}
        for gone, left in (("a.txt", {"b.txt", "c.txt"}), ("b.txt", {"c.txt"})):
            (root / gone).unlink()
            share.scan()
            assert share.by_sha256(sha).name in left
        write("a.txt")  # held once, then twice again
        share.scan()
        assert share.by_sha256(sha).name in {"a.txt", "c.txt"}
        for name in ("a.txt", "c.txt"):
            (root / name).unlink()
        share.scan()
        with pytest.raises(NotFound, match="does not share"):
            share.by_sha256(sha)
    finally:
        share.close()


def test_hash_cache_spares_a_restart_any_hashing(tmp_path, monkeypatch):
    from peer import chunking

    root = tmp_path / "share"
    (root / "d").mkdir(parents=True)
    for i in range(1500):  # more than one flush of the cache's queue
        (root / "d" / f"f{i}.txt").write_text(str(i))
    (root / "big.bin").write_bytes(os.urandom(3 * (1 << 20) + 5))
    for p in root.rglob("*"):
        settle(p)
    share = Share(root)
    first = {f.name: f.manifest for f in share.scan().added}
    share.close()
    assert len(first) == 1501 and len(first["big.bin"].chunk_digests) == 4

    def no_hashing(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("hashed again")

    monkeypatch.setattr(chunking, "hash_file", no_hashing)
    again = Share(root)
    try:
        assert {f.name: f.manifest for f in again.scan().added} == first
        (root / "d" / "f7.txt").unlink()
        assert again.scan().removed == ["d/f7.txt"]
    finally:
        again.close()
    with sqlite3.connect(root / ".p2p" / "hashes.db") as db:
        assert db.execute("SELECT count(*) FROM hashes").fetchone()[0] == 1500  # the removed file was forgotten


def test_a_hash_cache_of_another_digest_scheme_is_hashed_again(tmp_path, monkeypatch):
    from peer import chunking

    root = tmp_path / "share"
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(2 * (1 << 20) + 1))
    settle(root / "big.bin")
    share = Share(root)
    first = share.scan().added[0].manifest
    share.close()
    with sqlite3.connect(root / ".p2p" / "hashes.db") as db:  # as a peer of the plain-digest scheme left it
        db.execute("UPDATE hashes SET digests = ?", (b"\0" * 32 * 3,))
        db.execute("PRAGMA user_version = 1")
    hashed: list[str] = []
    real = chunking.hash_file
    monkeypatch.setattr(chunking, "hash_file", lambda p, *a, **k: hashed.append(p.name) or real(p, *a, **k))
    again = Share(root)
    try:
        assert again.scan().added[0].manifest == first and hashed == ["big.bin"]
    finally:
        again.close()


def test_a_scan_hands_over_what_it_hashed_in_slices_in_one_walk(tmp_path, monkeypatch):
    """A share of a million files is indexed in one walk; it once took a walk a slice (hours)."""
    root = tmp_path / "share"
    for i in range(6):
        (root / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 2}" / f"f{i}.txt").write_text(str(i))
        settle(root / f"d{i % 2}" / f"f{i}.txt")
    (root / "gone.txt").write_text("soon gone")
    settle(root / "gone.txt")
    walked: list[str] = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: walked.append(os.path.basename(path)) or real_scandir(path))
    share = Share(root)
    try:
        share.scan()
        (root / "gone.txt").unlink()
        for i in range(6, 11):
            (root / f"d{i % 2}" / f"f{i}.txt").write_text(str(i))
            settle(root / f"d{i % 2}" / f"f{i}.txt")
        walked.clear()
        slices: list[list[str]] = []

        def on_slice(changes) -> bool:
            assert not changes.removed  # only a whole walk knows what is gone
            names = [f.name for f in changes.added]
            assert all(share.by_name(n) is not None for n in names)  # served from the hand-over on
            slices.append(names)
            return True

        left = share.scan(slice_seconds=0, on_slice=on_slice)
        assert sorted(walked) == ["d0", "d1", "share"]  # each folder listed once, for 5 slices
        assert len(slices) == 5 and all(len(names) == 1 for names in slices)
        assert sorted(n for names in slices for n in names) == sorted(f"d{i % 2}/f{i}.txt" for i in range(6, 11))
        assert left.added == [] and left.removed == ["gone.txt"] and share.complete
        assert len(share.files()) == 11 and share.walk_seconds > 0
    finally:
        share.close()


def test_a_scan_stopped_by_its_hand_over_withdraws_nothing(tmp_path):
    root = tmp_path / "share"
    root.mkdir()
    (root / "old.txt").write_text("old")
    settle(root / "old.txt")
    share = Share(root)
    try:
        share.scan()
        for i in range(4):
            (root / f"new{i}.txt").write_text(str(i))
            settle(root / f"new{i}.txt")
        handed: list[str] = []
        left = share.scan(slice_seconds=0, on_slice=lambda changes: handed.extend(f.name for f in changes.added) and False)
        assert len(handed) == 1 and not left and not share.complete  # stopped at the first hand-over
        assert sorted(f.name for f in share.files()) == sorted(["old.txt", *handed])  # the files not walked yet stay
        assert len(share.scan().added) == 3 and share.complete  # the next scan picks up the rest
    finally:
        share.close()


def test_an_unreadable_folder_is_skipped_with_one_warning(tmp_path, caplog, monkeypatch):
    root = tmp_path / "share"
    (root / "locked").mkdir(parents=True)
    (root / "locked" / "secret.txt").write_text("x")
    (root / "open.txt").write_text("y")
    settle(root / "open.txt")
    real_scandir = os.scandir

    def scandir(path):  # chmod 000 does not stop root (CI may run as root): refuse this one folder
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    share = Share(root)
    try:
        for _ in range(3):
            share.scan()
        assert [f.name for f in share.files()] == ["open.txt"]
        assert sum("cannot read" in r.getMessage() for r in caplog.records) == 1
    finally:
        share.close()


def _manifest_of(tmp_path: Path, data: bytes):
    from peer import chunking
    from peer.manifest import Manifest

    source = tmp_path / "source.bin"
    source.write_bytes(data)
    return Manifest.from_hashes(chunking.hash_file(source, chunk_size=64 * 1024))


def test_a_download_into_the_share_is_shared_partially_then_whole_without_hashing_it_again(tmp_path, monkeypatch):
    from peer import chunking
    from peer.chunk_store import PartialFile, StagedFile

    monkeypatch.setattr(StagedFile, "REREAD_SECONDS", 0.0)
    root = tmp_path / "share"
    root.mkdir()
    data = os.urandom(3 * 64 * 1024 + 5)
    manifest = _manifest_of(tmp_path, data)
    share = Share(root)
    try:
        partial = PartialFile(root / "films" / "dl.bin", manifest)
        partial.write_chunk(1, data[64 * 1024 : 128 * 1024])
        (staged,) = share.scan().added
        assert (staged.name, staged.partial, staged.manifest) == ("films/dl.bin", True, manifest)
        assert share.files() == [] and share.published() == [staged] and share.by_sha256(manifest.sha256) is staged
        assert not share.scan()  # unchanged while it goes on: not published again
        for i in (0, 2, 3):
            partial.write_chunk(i, data[i * 64 * 1024 : (i + 1) * 64 * 1024])
        partial.finish()
        # Before the next rescan, its sources keep fetching from this peer without a pause: the
        # chunks verified last and streams opened after the rename come from the finished file.
        finished = staged.staged
        assert finished is not None and all(finished.holds(i) for i in range(4)) and finished.chunk_map().count() == 4
        fd = finished.open()  # the staged data file is gone: the finished one, the same inode
        try:
            assert b"".join(finished.read_chunk(fd, i) or b"" for i in range(4)) == data
        finally:
            os.close(fd)

        def no_hashing(*args: object, **kwargs: object) -> None:
            raise AssertionError("a finished download was hashed again")

        monkeypatch.setattr(chunking, "hash_file", no_hashing)
        (whole,) = share.scan().added  # at once, though written less than a second ago
        assert (whole.name, whole.partial, whole.manifest) == ("films/dl.bin", False, manifest)
        assert [f.name for f in share.files()] == ["films/dl.bin"]
        os.replace(tmp_path / "source.bin", root / "films" / "dl.bin")  # the same bytes, but another file
        with pytest.raises(NotFound, match="no longer being downloaded"):
            finished.open()
    finally:
        share.close()


def test_a_whole_file_comes_before_a_download_of_other_content_under_its_name(tmp_path):
    from peer.chunk_store import PartialFile

    root = tmp_path / "share"
    root.mkdir()
    (root / "x.bin").write_bytes(b"the old content")
    settle(root / "x.bin")
    data = os.urandom(2 * 64 * 1024)
    partial = PartialFile(root / "x.bin", _manifest_of(tmp_path, data))  # get --force, under way
    partial.write_chunk(0, data[: 64 * 1024])
    share = Share(root)
    try:
        share.scan()
        assert [(f.name, f.partial) for f in share.published()] == [("x.bin", False)]
    finally:
        partial.close()
        share.close()


def test_an_unfinished_transfer_left_untouched_is_removed_unless_it_is_being_written(tmp_path, caplog):
    from peer.chunk_store import PartialFile, staging_paths

    root = tmp_path / "share"
    root.mkdir()
    data = os.urandom(3 * 64 * 1024)
    manifest = _manifest_of(tmp_path, data)
    week = 7 * 24 * 3600

    def stage(name: str, age_seconds: float, keep_open: bool = False) -> tuple[Path, PartialFile]:
        partial = PartialFile(root / name, manifest)  # an upload whose sender went away, say
        partial.write_chunk(0, data[: 64 * 1024])
        if not keep_open:
            partial.close()
        then = time.time() - age_seconds
        for path in root.iterdir():
            if path.name.startswith(f".{name}."):
                os.utime(path, (then, then))
        return staging_paths(root / name, manifest.sha256)[0], partial

    abandoned, _ = stage("abandoned.bin", week + 60)
    recent, _ = stage("recent.bin", week - 60)
    paused, writing = stage("paused.bin", week + 60, keep_open=True)  # its writer still holds it
    share = Share(root, keep_partial_seconds=week)
    try:
        caplog.set_level("INFO", logger="peer.share")
        published = {f.name for f in share.scan().added}
        assert not abandoned.exists() and not any(p.name.startswith(".abandoned.bin.") for p in root.iterdir())
        assert "abandoned.bin" not in published and "unfinished transfer of abandoned.bin" in caplog.text
        assert recent.exists() and paused.exists() and published == {"recent.bin", "paused.bin"}
        writing.write_chunk(1, data[64 * 1024 : 128 * 1024])  # the paused transfer goes on undisturbed
    finally:
        writing.close()
        share.close()
    forever = Share(root, keep_partial_seconds=0)
    try:
        forever.scan()
        assert paused.exists()  # 0 keeps them for ever, however old
    finally:
        forever.close()


def test_an_unreadable_hash_cache_is_set_aside_and_the_share_hashed_again(tmp_path, caplog):
    root = tmp_path / "share"
    (root / ".p2p").mkdir(parents=True)
    (root / ".p2p" / "hashes.db").write_bytes(b"not a database, as after a disk error " * 8)
    (root / "a.txt").write_bytes(b"hello")
    settle(root / "a.txt")
    share = Share(root)  # was a traceback: sqlite3.DatabaseError: file is not a database
    try:
        assert [f.name for f in share.scan().added] == ["a.txt"]
        assert (root / ".p2p" / "hashes.db.unreadable").read_bytes().startswith(b"not a database")
        assert "could not be read (file is not a database)" in caplog.text
    finally:
        share.close()
    again = Share(root)  # the new cache is a good one
    try:
        assert [f.name for f in again.scan().added] == ["a.txt"] and caplog.text.count("could not be read") == 1
    finally:
        again.close()


def test_a_hash_cache_that_cannot_be_opened_or_written_costs_only_hashing_again(tmp_path, caplog):
    """A full disk (or a cache path taken by a folder): the share is still scanned and served,
    its hashes kept in memory, with one warning each, where `serve` refused to start."""
    root = tmp_path / "share"
    (root / ".p2p" / "hashes.db").mkdir(parents=True)  # what SQLite cannot open as a file
    (root / "a.txt").write_bytes(b"a")
    settle(root / "a.txt")
    share = Share(root)
    try:
        assert [f.name for f in share.scan().added] == ["a.txt"]
        assert "cannot keep the hash cache in" in caplog.text and "kept in memory" in caplog.text
    finally:
        share.close()
    (root / ".p2p" / "hashes.db").rmdir()
    share = Share(root)
    try:
        share.cache._db.execute("PRAGMA query_only = 1")  # its writes now fail, as on a disk that filled up
        for name in ("b.txt", "c.txt"):
            (root / name).write_bytes(name.encode())
            settle(root / name)
            assert name in [f.name for f in share.scan().added]
        assert caplog.text.count("cannot write the hash cache") == 1  # warned once, not at every scan
    finally:
        share.close()


def test_a_file_where_the_state_folder_goes_is_one_line(tmp_path):
    root = tmp_path / "share"
    root.mkdir()
    (root / ".p2p").write_text("someone's notes")
    with pytest.raises(FailedPrecondition, match=r"\.p2p is a file, where this peer keeps its hash cache: move it away"):
        Share(root)
    assert (root / ".p2p").read_text() == "someone's notes"


def test_an_upload_is_published_without_a_walk_and_one_landing_during_a_walk_is_not_dropped(tmp_path):
    """Each upload woke a rescan (receiving 2,000 photos walked the share 2,000 times); published
    without one, an upload that lands while a scan walks must not be taken for gone."""
    from peer.chunking import hash_file
    from peer.manifest import Manifest
    from peer.watcher import ShareWatcher

    root = tmp_path / "share"
    root.mkdir()
    (root / "old.txt").write_bytes(b"old")
    settle(root / "old.txt")
    share = Share(root)
    published: list[int] = []
    watcher = ShareWatcher(share, 60, lambda: published.append(1))
    try:
        share.scan()
        walks = 0
        real_walk = share._walk

        def walk(staged):
            nonlocal walks
            walks += 1
            yield from real_walk(staged)
            if walks == 2:  # the upload lands once the walk has passed its folder
                (root / "mid.txt").write_bytes(b"mid")
                share.add_verified("mid.txt", root / "mid.txt", Manifest.from_hashes(hash_file(root / "mid.txt")))

        share._walk = walk  # type: ignore[method-assign]
        (root / "up.txt").write_bytes(b"uploaded")
        share.add_verified("up.txt", root / "up.txt", Manifest.from_hashes(hash_file(root / "up.txt")))
        watcher.landed()
        assert [f.name for f in watcher.pending.take().added] == ["up.txt"] and published == [1] and walks == 0
        changes = share.scan()
        assert changes.removed == [] and [f.name for f in changes.added] == []
        changes = share.scan()  # mid.txt landed under this one's feet
        assert changes.removed == [] and [f.name for f in share.files()] == ["mid.txt", "old.txt", "up.txt"]
    finally:
        share.close()


def test_hidden_and_excluded_files_are_left_out_and_uploads_of_them_refused(tmp_path):
    """`serve --share ~` must not publish ~/.ssh/id_rsa; --exclude leaves out more, as rsync reads it."""
    root = tmp_path / "home"
    for name in (
        ".ssh/id_rsa",
        ".env",
        "code/.git/HEAD",
        "code/main.py",
        "code/node_modules/x/i.js",
        "a.tmp",
        "photos/raw/1.cr2",
        "photos/1.jpg",
        "1.jpg",
        "deep/photos/raw/2.cr2",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
        settle(root / name)
    share = Share(root, share_filter=ShareFilter.of(False, ["node_modules", "*.tmp", "photos/raw/", " /1.jpg"]))
    try:
        share.scan()
        assert [f.name for f in share.files()] == ["code/main.py", "deep/photos/raw/2.cr2", "photos/1.jpg"]
        assert share.left_out == 7  # .ssh, .env, .git, node_modules, a.tmp, photos/raw, 1.jpg: each counted once
        assert share.filter.describe() == "hidden files and folders, 'node_modules', '*.tmp', 'photos/raw', '/1.jpg'"
        for name, why in (
            (".ssh/authorized_keys", "hidden"),
            ("code/x/.env", "hidden"),
            ("b.tmp", "excluded by '*.tmp'"),
            ("photos/raw/3.cr2", "excluded by 'photos/raw'"),
            ("y/node_modules/z.js", "excluded by 'node_modules'"),
            ("1.jpg", "excluded by '/1.jpg'"),  # a leading slash anchors at the root: photos/1.jpg is shared
        ):
            with pytest.raises(PermissionDenied, match=f"leaves '{re.escape(name)}' out of its share \\({re.escape(why)}\\)"):
                share.path_for(name)
        assert share.path_for("code/other.py") == root / "code/other.py"
    finally:
        share.close()
    everything = Share(root, share_filter=ShareFilter.of(True, []))
    try:
        everything.scan()
        assert len(everything.files()) == 10 and everything.left_out == 0
    finally:
        everything.close()


def test_the_hash_cache_closed_under_a_hashing_thread_finds_and_keeps_nothing(tmp_path):
    """A peer stopping while its watcher still hashed a large file: what the watcher asks of the
    closed cache afterwards is a miss, and what it hashed is dropped, not an error in its thread."""
    (tmp_path / "a.bin").write_bytes(b"a")
    st = (tmp_path / "a.bin").stat()
    cache = HashCache(tmp_path / "state" / "hashes.db")
    manifest = Manifest("0" * 64, 1, 1 << 20, (bytes(32),))
    cache.put("a.bin", st, manifest)
    cache.flush()
    assert cache.get("a.bin", st) == manifest
    cache.close()
    assert cache.get("a.bin", st) is None
    cache.put("b.bin", st, manifest)
    cache.flush()
    cache.forget_except(set())
    assert HashCache(tmp_path / "state" / "hashes.db").get("a.bin", st) == manifest  # what it held before is kept
