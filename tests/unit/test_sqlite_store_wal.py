"""The WAL is checkpointed by maintain(), in the background, never by the call that commits."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from tracker.sqlite_store import SqliteStore
from tracker.store import FileRecord, Query

NOW = time.time()


def test_a_large_commit_is_checkpointed_by_maintain_not_by_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "tracker.db"
    wal = tmp_path / "tracker.db-wal"
    store = SqliteStore(str(db))
    store.add_account("a", "not-a-hash")
    session = store.open_session("a", "token", "127.0.0.1:7000", NOW + 600, NOW)
    store.checkpoint()
    before = db.stat().st_size
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20_000)]
    files = [FileRecord(f"music/track {i}.flac", i, sha, 1 << 20, sha) for i, sha in enumerate(shas)]

    assert store.replace_index(session.token_hash, files) == 20_000

    # thousands of pages committed (SQLite's default would checkpoint past 1,000): all still in the WAL
    assert wal.stat().st_size > 4 << 20
    assert db.stat().st_size == before
    while store.maintain(1.0):  # what the reaper does between rounds
        pass
    frames, copied = store.checkpoint()
    assert frames == copied  # nothing left behind
    assert db.stat().st_size > before + (4 << 20)
    found = store.query(Query(sha256=shas[123], limit=5), NOW)
    assert [(m.sha256, [s.name for s in m.sources]) for m in found] == [(shas[123], ["music/track 123.flac"])]
    store.close()


def test_files_get_ids_in_sha256_order_and_keep_their_names(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "tracker.db"))
    store.add_account("a", "not-a-hash")
    session = store.open_session("a", "token", "127.0.0.1:7000", NOW + 600, NOW)
    files = [FileRecord(f"f{i}", i, hashlib.sha256(str(i).encode()).hexdigest(), 1 << 20, "0" * 64) for i in range(50)]
    store.replace_index(session.token_hash, files)
    with store._read() as c:
        rows = c.execute("SELECT name, size, sha256 FROM files ORDER BY id").fetchall()
    assert [r[2] for r in rows] == sorted(f.sha256 for f in files)
    assert sorted(rows) == sorted((f.name, f.size, f.sha256) for f in files)
    store.close()
