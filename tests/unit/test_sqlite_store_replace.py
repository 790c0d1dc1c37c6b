"""A session's whole index replaced in the SQLite store: a slice at a time, seen all at once."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracker import sqlite_store
from tracker.sqlite_store import STAGING, SqliteStore
from tracker.store import FileRecord, ListedTwice, Query, SessionEnded

NOW = time.time()


def _records(tag: str, count: int) -> list[FileRecord]:
    shas = [hashlib.sha256(f"{tag}{i}".encode()).hexdigest() for i in range(count)]
    return [FileRecord(f"{tag}/{i}.txt", i, sha, 1 << 20, sha) for i, sha in enumerate(shas)]


def _listed(store: SqliteStore, name: str) -> list[str]:
    query = Query(name_pattern=name, glob=False, sha256="", after_sha256="", limit=100, peer="")
    return sorted(m.name for m in store.query(query, NOW))


def _rows(path: Path, sql: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SqliteStore]:
    monkeypatch.setattr(sqlite_store, "STAGE_SLICE", 10)
    store = SqliteStore(str(tmp_path / "tracker.db"))
    store.add_account("a", "not-a-hash")
    yield store
    store.close()


def test_a_replaced_index_is_stored_in_slices_that_others_write_between_and_seen_at_once(store, tmp_path) -> None:
    """While 35 files go in (slices of 10), queries see the old index only, and another session's
    heartbeat gets the database between slices (one transaction held it 14 s at a million files);
    then the new index is seen whole, under the same session, and the old files are purged."""
    peer = store.open_session("a", "token-peer", "127.0.0.1:7001", NOW + 60, NOW)
    other = store.open_session("a", "token-other", "127.0.0.1:7002", NOW + 60, NOW)
    store.update_index(peer.token_hash, _records("old", 3), [])
    seen_midway: list[list[str]] = []
    renewed_midway: list[bool] = []

    def files() -> Iterator[FileRecord]:
        for i, record in enumerate(_records("new", 35)):
            if i == 25:  # two slices stored
                seen_midway.append(_listed(store, "/"))
                beat = threading.Thread(target=lambda: renewed_midway.append(store.renew_session(other.token_hash, NOW + 90)))
                beat.start()
                beat.join(10)  # stuck if the write lock were held while the files are read
            yield record

    assert store.replace_index(peer.token_hash, files()) == 35

    assert seen_midway == [[f"old/{i}.txt" for i in range(3)]] and renewed_midway == [True]
    assert _listed(store, "/") == sorted(f"new/{i}.txt" for i in range(35))
    moved = store.session_by_token(peer.token_hash, NOW)
    assert (
        moved is not None
        and moved.id != peer.id
        and (moved.account, moved.address, moved.expires_at) == ("a", "127.0.0.1:7001", NOW + 60)
    )
    assert store.renew_session(peer.token_hash, NOW + 120) and store.update_index(peer.token_hash, _records("more", 2), []) == 37
    while store.maintain(1.0):
        pass
    path = tmp_path / "tracker.db"
    assert _rows(path, f"SELECT count(*) FROM files WHERE session_id={peer.id}") == 0
    assert _rows(path, f"SELECT count(*) FROM sessions WHERE id={peer.id}") == 0


def test_a_replacement_failing_half_way_leaves_the_old_index_and_nothing_of_its_own(store, tmp_path) -> None:
    """An entry found bad after two slices went in: the old index stays as it was, and the upkeep
    deletes what was stored of the new one."""
    peer = store.open_session("a", "token-peer", "127.0.0.1:7001", NOW + 60, NOW)
    store.update_index(peer.token_hash, _records("old", 3), [])

    def files() -> Iterator[FileRecord]:
        yield from _records("new", 25)
        raise ValueError("entry 26 is bad")

    with pytest.raises(ValueError, match="entry 26"):
        store.replace_index(peer.token_hash, files())

    assert _listed(store, "/") == [f"old/{i}.txt" for i in range(3)]
    path = tmp_path / "tracker.db"
    assert _rows(path, "SELECT count(*) FROM files") == 23
    while store.maintain(1.0):
        pass
    assert _rows(path, "SELECT count(*) FROM files") == 3
    assert _rows(path, "SELECT count(*) FROM sessions") == 1


def test_a_name_listed_twice_in_different_slices_is_named_and_nothing_applied(store) -> None:
    peer = store.open_session("a", "token-peer", "127.0.0.1:7001", NOW + 60, NOW)
    files = _records("new", 25)
    with pytest.raises(ListedTwice) as twice:
        store.replace_index(peer.token_hash, [*files, files[4]])
    assert twice.value.name == "new/4.txt"
    assert _listed(store, "/") == []


def test_a_session_ended_while_its_index_is_stored_keeps_it_unseen(store) -> None:
    """A logout (or a new login from the same place) half-way: the index is not handed to anyone."""
    peer = store.open_session("a", "token-peer", "127.0.0.1:7001", NOW + 60, NOW)

    def files() -> Iterator[FileRecord]:
        for i, record in enumerate(_records("new", 25)):
            if i == 15:
                store.close_session(peer.token_hash)
            yield record

    with pytest.raises(SessionEnded):
        store.replace_index(peer.token_hash, files())
    again = store.open_session("a", "token-again", "127.0.0.1:7001", NOW + 60, NOW)
    assert _listed(store, "/") == [] and store.session_by_token(again.token_hash, NOW) is not None
    with pytest.raises(SessionEnded):
        store.replace_index(peer.token_hash, _records("late", 2))


def test_an_index_left_half_stored_by_a_stopped_tracker_is_purged_by_the_next(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_store, "STAGE_SLICE", 10)
    path = tmp_path / "tracker.db"
    store = SqliteStore(str(path))
    store.add_account("a", "not-a-hash")
    peer = store.open_session("a", "token-peer", "127.0.0.1:7001", NOW + 60, NOW)
    staging = store._open_staging(peer.token_hash)  # as replace_index starts, then the process dies
    with store._write() as c:
        store._insert(c, staging, _records("new", 10))
    store.close()

    store = SqliteStore(str(path))
    while store.maintain(1.0):
        pass
    assert _rows(path, "SELECT count(*) FROM files") == 0
    assert _rows(path, f"SELECT count(*) FROM sessions WHERE expires_at={STAGING}") == 0
    assert store.session_by_token(peer.token_hash, NOW) is not None
    assert store.replace_index(peer.token_hash, _records("new", 12)) == 12
    store.close()
