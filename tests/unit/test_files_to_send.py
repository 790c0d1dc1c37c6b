"""What `put` sends: files by their names, folders with their files in their folders, as cp -r."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from p2p_common.errors import InvalidArgument
from peer.transfers import files_to_send


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    (tmp_path / "photos/trip").mkdir(parents=True)
    (tmp_path / "photos/a.jpg").write_bytes(b"a")
    (tmp_path / "photos/trip/b.jpg").write_bytes(b"b")
    os.symlink(tmp_path / "photos/a.jpg", tmp_path / "photos/link.jpg")  # not followed
    (tmp_path / "notes.txt").write_text("n")
    return tmp_path / "photos"


def named(found: list[tuple[Path, str]]) -> dict[str, str]:
    return {name: path.read_bytes().decode() for path, name in found}


def test_a_file_goes_by_its_name_or_the_one_given(photos):
    notes = photos.parent / "notes.txt"
    assert files_to_send([notes]) == [(notes, "notes.txt")]
    assert files_to_send([notes], "inbox/today.txt") == [(notes, "inbox/today.txt")]


def test_a_folder_goes_with_its_files_in_their_folders_under_its_name_or_the_one_given(photos):
    assert named(files_to_send([photos])) == {"photos/a.jpg": "a", "photos/trip/b.jpg": "b"}
    assert named(files_to_send([photos], "backup")) == {"backup/a.jpg": "a", "backup/trip/b.jpg": "b"}


def test_several_paths_go_into_the_folder_given(photos):
    found = files_to_send([photos, photos.parent / "notes.txt"], "inbox/")
    assert named(found) == {"inbox/photos/a.jpg": "a", "inbox/photos/trip/b.jpg": "b", "inbox/notes.txt": "n"}


def test_what_cannot_be_sent_fails_before_anything_is_sent(photos, tmp_path):
    with pytest.raises(InvalidArgument, match=re.escape("missing.txt: no such file or folder")):
        files_to_send([photos, tmp_path / "missing.txt"])
    with pytest.raises(InvalidArgument, match="is a symbolic link"):
        files_to_send([photos / "link.jpg"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgument, match=r"no files to send: .*empty holds none$"):
        files_to_send([tmp_path / "empty"])
    (tmp_path / "empty2").mkdir()
    with pytest.raises(InvalidArgument, match=r"no files to send: .*empty, .*empty2 hold none$"):
        files_to_send([tmp_path / "empty", tmp_path / "empty2"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other/notes.txt").write_text("other")
    with pytest.raises(InvalidArgument, match=re.escape("would both be sent as 'notes.txt'")):
        files_to_send([tmp_path / "notes.txt", tmp_path / "other/notes.txt"])
    with pytest.raises(InvalidArgument, match=re.escape("has an empty, '.' or '..' component")):
        files_to_send([tmp_path / "notes.txt"], "../outside.txt")


def test_what_a_share_would_not_share_is_left_out_of_a_folder_and_told(photos):
    (photos / ".p2p").mkdir()  # the folder is a share: its state stays
    (photos / ".p2p/hashes.db").write_bytes(b"cache")
    (photos / "trip/.c.jpg.0123456789abcdef.p2p-part").write_bytes(b"half")  # a get under way
    os.mkfifo(photos / "trip/pipe")
    os.symlink(photos / "trip", photos / "trip-link")
    told: list[tuple[str, str]] = []
    found = files_to_send([photos], on_skip=lambda path, why: told.append((path.relative_to(photos).as_posix(), why)))
    assert named(found) == {"photos/a.jpg": "a", "photos/trip/b.jpg": "b"}
    assert sorted(told) == [
        (".p2p", "a peer's own state"),
        ("link.jpg", "a symbolic link, not followed"),
        ("trip-link", "a symbolic link, not followed"),
        ("trip/.c.jpg.0123456789abcdef.p2p-part", "the staged part of a transfer under way"),
        ("trip/pipe", "not a regular file"),
    ]


def test_hidden_files_and_folders_are_left_out_of_a_folder_unless_named(photos):
    (photos / ".git").mkdir()
    (photos / ".git/HEAD").write_text("ref")
    (photos / "trip/.env").write_text("SECRET=1")
    told: list[tuple[str, str]] = []
    found = files_to_send([photos], on_skip=lambda path, why: told.append((path.relative_to(photos).as_posix(), why)))
    assert named(found) == {"photos/a.jpg": "a", "photos/trip/b.jpg": "b"}
    hidden = "hidden, as a share leaves it out (name it on its own to send it)"
    assert [t for t in told if "hidden" in t[1]] == [(".git", hidden), ("trip/.env", hidden)]
    assert named(files_to_send([photos / "trip/.env"])) == {".env": "SECRET=1"}
