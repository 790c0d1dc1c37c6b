"""Sessions in the SQLite store across a restart."""

from __future__ import annotations

import time
from pathlib import Path

from tracker.sqlite_store import SqliteStore

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
        resumed = store.session_by_id(session.id, NOW)
        assert resumed is not None and resumed.expires_at == NOW + 70
    assert store.session_by_id(from_the_future.id, NOW + 71) is None
    store.close()
