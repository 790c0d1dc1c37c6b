"""Sessions in the SQLite store: ending them, and across a restart."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

from tracker import sqlite_store
from tracker.sqlite_store import SqliteStore
from tracker.store import FileRecord, Query

NOW = time.time()


def test_resume_gives_every_session_the_same_fresh_lease(tmp_path: Path) -> None:
    """A lease that ran out while the tracker was down is renewed, and one that ends an hour from
    now (given before the wall clock was set back an hour) is cut to the same."""
    store = SqliteStore(str(tmp_path / "tracker.db"))
    store.add_account("a", "not-a-hash")
    ran_out = store.open_session("a", "token-1", "127.0.0.1:7001", NOW - 5, NOW - 65)
    from_the_future = store.open_session("a", "token-2", "127.0.0.1:7002", NOW + 3600, NOW + 3540)

    assert store.resume_sessions(NOW + 70) == 2

    for session in (ran_out, from_the_future):
        resumed = store.session_by_token(session.token_hash, NOW)
        assert resumed is not None and resumed.expires_at == NOW + 70
    assert store.session_by_token(from_the_future.token_hash, NOW + 71) is None
    store.close()


def _records(tag: str, count: int) -> list[FileRecord]:
    shas = [hashlib.sha256(f"{tag}{i}".encode()).hexdigest() for i in range(count)]
    return [FileRecord(f"{tag}/{i}.txt", i, sha, 1 << 20, sha) for i, sha in enumerate(shas)]


def _files_of(path: Path, session_id: int) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT count(*) FROM files WHERE session_id=?", (session_id,)).fetchone()[0])
    finally:
        db.close()


def _listed(store: SqliteStore, name: str) -> list[str]:
    query = Query(name_pattern=name, glob=False, sha256="", after_sha256="", limit=100, peer="")
    return [m.name for m in store.query(query, NOW)]


def test_an_ended_session_is_gone_at_once_and_its_files_are_deleted_a_slice_at_a_time(tmp_path: Path, monkeypatch) -> None:
    """A logout is a mark: queries, calls and renewals refuse the session at once; the upkeep then
    deletes its files a range of ids at a time (one transaction held every writer for seconds
    at a million files), leaving a live session's files, interleaved with them, alone."""
    monkeypatch.setattr(sqlite_store, "PURGE_SLICE", 10)
    path = tmp_path / "tracker.db"
    store = SqliteStore(str(path))
    store.add_account("a", "not-a-hash")
    gone = store.open_session("a", "token-gone", "127.0.0.1:7001", NOW + 60, NOW)
    live = store.open_session("a", "token-live", "127.0.0.1:7002", NOW + 60, NOW)
    for batch in range(7):  # their file ids interleave
        store.update_index(gone.token_hash, _records(f"gone{batch}", 5), [], 1000)
        store.update_index(live.token_hash, _records(f"live{batch}", 2), [], 1000)
    assert _listed(store, "gone3/") and _listed(store, "live3/")

    store.close_session(gone.token_hash)

    assert _listed(store, "gone3/") == [] and store.session_by_token("token-gone", NOW) is None
    assert store.renew_session(gone.token_hash, NOW + 60) is False  # a heartbeat racing the logout revives nothing
    assert _files_of(path, gone.id) == 35  # still there, deleted by the upkeep
    slices = []
    while True:
        before = _files_of(path, gone.id)
        with store._write() as c:
            more = store._purge_ended(c)
        slices.append(before - _files_of(path, gone.id))
        if not more:
            break
    assert sum(slices) == 35 and len(slices) >= 4 and max(slices) <= 10, slices
    assert _files_of(path, live.id) == 14 and len(_listed(store, "live3/")) == 2
    assert store.session_by_token(live.token_hash, NOW) is not None
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM sessions WHERE id=?", (gone.id,)).fetchone()[0] == 0
    db.close()
    store.close()


def test_sessions_end_once_and_a_restart_neither_revives_nor_keeps_the_ended(tmp_path: Path) -> None:
    """Expiry counts each session once; a session ended just before a restart stays ended and its
    files are deleted by the next tracker's upkeep; one whose lease ran out unreaped carries on."""
    path = tmp_path / "tracker.db"
    store = SqliteStore(str(path))
    store.add_account("a", "not-a-hash")
    ran_out = store.open_session("a", "token-1", "127.0.0.1:7001", NOW - 5, NOW - 65)
    logged_out = store.open_session("a", "token-2", "127.0.0.1:7002", NOW + 60, NOW)
    store.update_index(logged_out.token_hash, _records("out", 3), [], 1000)
    store.close_session(logged_out.token_hash)
    store.close()

    store = SqliteStore(str(path))
    assert store.resume_sessions(NOW + 70) == 1
    assert store.session_by_token(ran_out.token_hash, NOW) is not None
    assert store.session_by_token(logged_out.token_hash, NOW) is None
    assert store.expire_sessions(NOW + 71) == 1
    assert store.expire_sessions(NOW + 72) == 0
    assert _files_of(path, logged_out.id) == 3
    while store.maintain(5.0):
        pass
    assert _files_of(path, logged_out.id) == 0
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
    db.close()
    store.close()
