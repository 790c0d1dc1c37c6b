"""Name queries on a real SQLite store, page by page, against a brute-force oracle.

Covers the paths a name query can take: one run of letters walked in sha256 order (with
contents whose sha256 share their first 60 bits, dead sessions' and deleted files' postings in
the way, files not indexed yet), several runs intersected in memory, and globs.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tracker import name_index
from tracker.name_index import fold
from tracker.sqlite_store import SqliteStore
from tracker.store import FileRecord, Query

WORDS = ["kaiwe", "kaiweboro", "bokaiwe", "dunor", "zenpa", "mp3", "flac", "dunorkaiwe", "Zénpa", "ZENPA", "Çafé", "cafe\u0301s"]
NOW = time.time()


def _sha(rng: random.Random, prefix: str = "") -> str:
    return prefix + "".join(rng.choice("0123456789abcdef") for _ in range(64 - len(prefix)))


def _files(rng: random.Random, count: int, tag: str, shared: list[str]) -> list[FileRecord]:
    files = []
    for i in range(count):
        name = f"{tag}/{rng.choice(WORDS)} {rng.choice(WORDS)} {i}.{rng.choice(['mp3', 'flac'])}"
        roll = rng.random()
        # a few contents share their first 60 bits (one sha_key); some are held by several sessions
        sha = _sha(rng, "0" * 15) if roll < 0.15 else rng.choice(shared) if roll < 0.3 else _sha(rng)
        files.append(FileRecord(name, i, sha, 1 << 20, sha))
    return files


@pytest.fixture(params=["merged", "half recent"])
def store_and_live(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[SqliteStore, list[FileRecord]]:
    rng = random.Random(5)
    store = SqliteStore(str(tmp_path / "tracker.db"))
    store.add_account("a", "not-a-hash")
    shared = [_sha(rng) for _ in range(10)]
    sessions = [store.open_session("a", f"token-{i}", f"127.0.0.1:{7000 + i}", NOW + 600, NOW).token_hash for i in range(3)]
    dead = store.open_session("a", "token-dead", "127.0.0.1:7100", NOW + 600, NOW).token_hash
    live: dict[str, list[FileRecord]] = {}
    for s in sessions:
        live[s] = _files(rng, 120, f"s{s}", shared)
        store.replace_index(s, live[s])
    store.replace_index(dead, _files(rng, 150, "dead", shared))
    while store.maintain(1.0):
        pass
    if request.param == "half recent":  # postings not merged yet: a query reads both tables
        with store._write() as c:
            c.execute("INSERT INTO file_words_recent SELECT * FROM file_words WHERE (word_id + file_id) % 2 = 0")
            c.execute("DELETE FROM file_words WHERE (word_id + file_id) % 2 = 0")
    removed = [f.name for f in live[sessions[0]][:40]]  # their postings stay until pruned
    store.update_index(sessions[0], [], removed)
    live[sessions[0]] = live[sessions[0]][40:]
    late = _files(rng, 30, "late", shared)  # published after the index caught up: not indexed yet
    store.update_index(sessions[1], late, [])
    live[sessions[1]] += late
    with store._write() as c:  # the dead session's lease ran out (the reaper has not deleted it yet)
        c.execute("UPDATE sessions SET expires_at = ? WHERE token_hash = ?", (NOW - 1, dead))
    return store, [f for files in live.values() for f in files]


def _pages(store: SqliteStore, pattern: str, limit: int) -> list[str]:
    shas, after = [], ""
    for _ in range(1000):
        page = [
            m.sha256 for m in store.query(Query(name_pattern=pattern, glob="*" in pattern, after_sha256=after, limit=limit), NOW)
        ]
        shas += page
        if len(page) < limit:
            return shas
        after = page[-1]
    raise AssertionError("paging did not end")


def _oracle(live: list[FileRecord], pattern: str) -> list[str]:
    if "*" in pattern:
        db = sqlite3.connect(":memory:")  # GLOB, exactly as SQLite matches it
        return sorted({f.sha256 for f in live if db.execute("SELECT ? GLOB ?", (fold(f.name), fold(pattern))).fetchone()[0]})
    return sorted({f.sha256 for f in live if fold(pattern) in fold(f.name)})


@pytest.mark.parametrize(
    "pattern",
    [
        "kaiwe",
        "dunor",
        "boro",
        "zenpa",
        "kaiwe kaiwe",
        "kaiwe dunor",
        "dunorkaiwe",
        "*/zenpa*.flac",
        "CAFÉ",
        "cafe\u0301",
        "*/Zé*",
    ],
)
@pytest.mark.parametrize("limit", [1, 3, 50])
def test_name_queries_page_through_exactly_the_live_matches(store_and_live, pattern, limit):
    store, live = store_and_live
    expected = _oracle(live, pattern)
    assert expected, "the fixture should match something"
    assert _pages(store, pattern, limit) == expected


def test_the_one_word_walk_reads_only_the_first_page_of_postings(store_and_live, monkeypatch):
    """A page of 3 must not fetch every file holding 'kaiwe': the walk asks for 19 postings first."""
    store, live = store_and_live
    fetched: list[int] = []
    original = store._first_contents

    def counting(c, q, candidates, now, **how):
        if candidates is not None:
            fetched.append(len(candidates[1][0].split(",")))
        return original(c, q, candidates, now, **how)

    monkeypatch.setattr(store, "_first_contents", counting)
    page = [m.sha256 for m in store.query(Query(name_pattern="kaiwe", limit=3), NOW)]
    assert page == _oracle(live, "kaiwe")[:3]
    holders = sum("kaiwe" in f.name for f in live)
    assert fetched and max(fetched) <= 19 * 8 < holders


OLD_LAYOUTS = {
    "no sha_key": ("word_id INTEGER, file_id INTEGER, PRIMARY KEY (word_id, file_id)", "word_id, file_id"),
    "sha_key in the key": (
        "word_id INTEGER, sha_key INTEGER, file_id INTEGER, PRIMARY KEY (word_id, sha_key, file_id)",
        "word_id, 0, file_id",
    ),
}


@pytest.mark.parametrize("layout", OLD_LAYOUTS)
def test_an_index_of_an_earlier_version_is_upgraded_at_start(tmp_path: Path, store_and_live, layout):
    store, _ = store_and_live
    while store.maintain(1.0, prune_now=True):  # index the late files, prune the deleted ones
        pass
    expected = {p: _pages(store, p, 50) for p in ["kaiwe", "kaiwe dunor"]}
    store.close()
    path = str(tmp_path / "tracker.db")
    db = sqlite3.connect(path, isolation_level=None)
    postings = db.execute("SELECT word_id, file_id FROM file_words").fetchall()
    columns, values = OLD_LAYOUTS[layout]
    db.execute("DROP TABLE file_words")
    db.execute(f"CREATE TABLE file_words ({columns}) WITHOUT ROWID")
    db.executemany(f"INSERT INTO file_words SELECT {values} FROM (SELECT ? AS word_id, ? AS file_id)", [*postings, (1, 10**9)])
    db.close()

    upgraded = SqliteStore(path)  # (the stale posting of file 10**9 goes)
    db = sqlite3.connect(path)
    assert [(row[1], row[5]) for row in db.execute("PRAGMA table_info(file_words)")] == [
        ("word_id", 1),
        ("file_id", 2),
        ("sha_key", 0),
    ]
    pairs = db.execute("SELECT w.sha_key, f.sha256 FROM file_words w JOIN files f ON f.id = w.file_id").fetchall()
    assert db.execute("SELECT count(*) FROM file_words").fetchone()[0] == len(postings) == len(pairs)
    assert all(key == int(sha[:15], 16) for key, sha in pairs)
    assert {p: _pages(upgraded, p, 50) for p in expected} == expected
    upgraded.close()
    assert SqliteStore(path).query(Query(name_pattern="kaiwe", limit=50), NOW)  # a second start has nothing to upgrade


def test_recent_postings_move_into_the_large_table_a_slice_at_a_time(store_and_live, monkeypatch):
    store, _ = store_and_live
    monkeypatch.setattr(name_index, "MERGE_POSTINGS_PER_SLICE", 40)
    while store.maintain(1.0):  # index and merge everything
        pass
    db = sqlite3.connect(store._path)
    assert db.execute("SELECT count(*) FROM file_words_recent").fetchone() == (0,)
    with store._write() as c:  # a third of the postings not merged yet
        c.execute("INSERT INTO file_words_recent SELECT * FROM file_words WHERE file_id % 3 = 0")
        c.execute("DELETE FROM file_words WHERE file_id % 3 = 0")

    def postings() -> list[tuple[int, int, int]]:
        return sorted(db.execute("SELECT * FROM file_words UNION ALL SELECT * FROM file_words_recent").fetchall())

    before = postings()
    (recent,) = db.execute("SELECT count(*) FROM file_words_recent").fetchone()
    (widest,) = db.execute("SELECT max(n) FROM (SELECT count(*) AS n FROM file_words_recent GROUP BY word_id)").fetchone()
    slices, more = 0, True
    while more:
        with store._write() as c:
            more = name_index.merge_recent(c)
        slices += 1
        assert postings() == before  # moved, never lost or doubled
        (left,) = db.execute("SELECT count(*) FROM file_words_recent").fetchone()
        assert 0 < recent - left <= 40 + widest  # a bounded slice (a word goes whole)
        recent = left
    assert recent == 0 and slices > 3
    db.close()


def test_names_indexed_lowercased_only_by_an_earlier_version_are_folded_at_start(tmp_path: Path, monkeypatch):
    """Versions that matched names lowercased only kept them in files.name_lower, and their
    postings hold words such as "çafé": at start, every name is folded and indexed anew."""
    rng = random.Random(7)
    monkeypatch.setattr("tracker.sqlite_store.fold", str.lower)  # as those versions stored names
    path = str(tmp_path / "tracker.db")
    store = SqliteStore(path)
    store.add_account("a", "not-a-hash")
    session = store.open_session("a", "token", "127.0.0.1:7000", NOW + 600, NOW).token_hash
    live = _files(rng, 150, "s", [_sha(rng) for _ in range(5)])
    store.replace_index(session, live)
    while store.maintain(1.0):
        pass
    assert _pages(store, "cafe", 7) != _oracle(live, "cafe")  # those versions missed "Çafé"
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE files RENAME COLUMN name_folded TO name_lower")
    monkeypatch.undo()

    upgraded = SqliteStore(path)
    for pattern in ["cafe", "CAFÉ s", "zenpa", "*/zé*"]:  # straight away (the renamed files are not indexed yet) ...
        assert _pages(upgraded, pattern, 7) == _oracle(live, pattern), pattern
    while upgraded.maintain(1.0, prune_now=True):
        pass
    for pattern in ["cafe", "CAFÉ s", "zenpa", "*/zé*", "kaiwe"]:  # ... and once they are
        assert _pages(upgraded, pattern, 7) == _oracle(live, pattern), pattern
    assert _oracle(live, "cafe") and _oracle(live, "*/zé*")
    db = sqlite3.connect(path)
    assert {row[1] for row in db.execute("PRAGMA table_info(files)")} >= {"name", "name_folded"}
    db.close()
    upgraded.close()
    SqliteStore(path).close()  # a second start has nothing to upgrade


def test_accounts_are_managed_beside_a_tracker_without_upgrading_its_database(tmp_path: Path):
    """`p2p-tracker user add` of a newer version, run beside an older tracker still serving, must
    leave the schema that tracker reads as it is (and not load a million names to add a user)."""
    path = str(tmp_path / "tracker.db")
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:  # the files table as versions before name folding had it
        db.execute("ALTER TABLE files RENAME COLUMN name_folded TO name_lower")
    accounts = SqliteStore(path, accounts_only=True)
    accounts.add_account("erin", "not-a-hash")
    accounts.close()
    with sqlite3.connect(path) as db:
        assert "name_lower" in {row[1] for row in db.execute("PRAGMA table_info(files)")}
    served = SqliteStore(path)  # a tracker of this version serving it upgrades it
    assert served.account("erin") is not None
    served.close()
    with sqlite3.connect(path) as db:
        assert "name_folded" in {row[1] for row in db.execute("PRAGMA table_info(files)")}


def test_a_restart_reads_both_tables_of_postings_into_memory(tmp_path: Path, store_and_live):
    store, live = store_and_live
    path = store._path
    store.close()
    reopened = SqliteStore(path)  # a title's words are intersected in memory: it must hold them all
    assert _pages(reopened, "kaiwe dunor", 50) == _oracle(live, "kaiwe dunor")
    reopened.close()


def test_sha_keys_order_like_the_sha256s_they_come_from():
    from tracker.name_index import sha_key

    shas = sorted(hashlib.sha256(str(i).encode()).hexdigest() for i in range(2000))
    keys = [sha_key(s) for s in shas]
    assert keys == sorted(keys) and all(0 <= k < 2**63 for k in keys)


NEW_FILE = "docs/my axb.txt"


def _store_with_a_file_not_indexed_yet(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(str(tmp_path / "tracker.db"))
    store.add_account("a", "not-a-hash")
    session = store.open_session("a", "token", "127.0.0.1:7000", NOW + 600, NOW)
    sha = hashlib.sha256(b"axb").hexdigest()
    store.replace_index(session.token_hash, [FileRecord(NEW_FILE, 3, sha, 1 << 20, sha)])
    return store


def _catch_up_on_another_thread(store: SqliteStore) -> None:
    """What the reaper does, at the moment a test chooses."""
    worker = threading.Thread(target=lambda: store.maintain(5.0))
    worker.start()
    worker.join()


def test_a_catch_up_committed_in_the_middle_of_a_query_hides_nothing(tmp_path: Path, monkeypatch) -> None:
    """A query reads the postings, then the files not indexed yet: in one snapshot. Read apart, a
    catch-up committed in between hid the files it had just indexed."""
    store = _store_with_a_file_not_indexed_yet(tmp_path)
    ids_sql = name_index.ids_sql

    def catch_up_meanwhile(file_ids: list[int]) -> tuple[str, list[object]]:
        _catch_up_on_another_thread(store)
        return ids_sql(file_ids)

    monkeypatch.setattr(name_index, "ids_sql", catch_up_meanwhile)
    assert [m.name for m in store.query(Query(name_pattern="xb"), NOW)] == [NEW_FILE]
    monkeypatch.setattr(name_index, "ids_sql", ids_sql)
    assert [m.name for m in store.query(Query(name_pattern="xb"), NOW)] == [NEW_FILE]  # now from the index
    store.close()


@pytest.mark.parametrize("pattern", ["xb", "my axb"])  # one run of letters; two, intersected in memory
def test_a_catch_up_committed_between_reading_memory_and_sqlite_hides_nothing(tmp_path: Path, monkeypatch, pattern) -> None:
    """The in-memory index is read after the query's snapshot starts: a catch-up that adds to
    memory and commits in between cannot make a file neither indexed nor "not indexed yet"."""
    store = _store_with_a_file_not_indexed_yet(tmp_path)
    runs_to_intersect = name_index.runs_to_intersect

    def catch_up_after_reading_memory(*args: object) -> list[name_index.Candidates]:
        runs = runs_to_intersect(*args)  # type: ignore[arg-type]
        _catch_up_on_another_thread(store)
        return runs

    monkeypatch.setattr(name_index, "runs_to_intersect", catch_up_after_reading_memory)
    assert [m.name for m in store.query(Query(name_pattern=pattern), NOW)] == [NEW_FILE]
    store.close()


@pytest.fixture
def two_accounts(tmp_path: Path) -> tuple[SqliteStore, dict[str, list[FileRecord]]]:
    """Accounts "a" (two serving sessions) and "b" (one), holding some contents in common under
    names of their own; "a" also has a client-only session and a dead one, whose files never count."""
    rng = random.Random(7)
    store = SqliteStore(str(tmp_path / "tracker.db"))
    shared = [_sha(rng) for _ in range(10)]
    live: dict[str, list[FileRecord]] = {"a": [], "b": []}
    for account, places in (("a", 2), ("b", 1)):
        store.add_account(account, "not-a-hash")
        for i in range(places):
            session = store.open_session(account, f"{account}-{i}", f"127.0.0.1:{7000 + i}", NOW + 600, NOW).token_hash
            files = _files(rng, 80, f"{account}{i}", shared)
            store.replace_index(session, files)
            live[account] += files
    for token, address, expires in (("a-client", "", NOW + 600), ("a-dead", "127.0.0.1:7100", NOW - 1)):
        session = store.open_session("a", token, address, expires, NOW).token_hash
        store.replace_index(session, _files(rng, 40, token, [_sha(rng) for _ in range(3)]))
    late = _files(rng, 20, "late", shared)  # not indexed yet: a query checks these apart
    while store.maintain(1.0):
        pass
    store.update_index(store.open_session("b", "b-late", "127.0.0.1:7200", NOW + 600, NOW).token_hash, late, [])
    live["b"] += late
    return store, live


@pytest.mark.parametrize("pattern", ["", "kaiwe", "kaiwe dunor", "*/zenpa*.flac", "mp3", "ZÉNPA"])
@pytest.mark.parametrize("limit", [1, 7, 100])
def test_a_peers_share_pages_through_exactly_what_it_holds_under_matching_names(two_accounts, pattern, limit):
    store, live = two_accounts
    for account in ("a", "b"):
        shas, after = [], ""
        for _ in range(1000):
            query = Query(name_pattern=fold(pattern), glob="*" in pattern, after_sha256=after, limit=limit, peer=account)
            page = store.query(query, NOW)
            for match in page:  # the account's own name for it, and its sources listed
                assert match.name in {f.name for f in live[account] if f.sha256 == match.sha256}
                assert {s.peer_name for s in match.sources} >= {account}
            shas += [m.sha256 for m in page]
            if len(page) < limit:
                break
            after = page[-1].sha256
        expected = _oracle(live[account], pattern)
        assert expected, "the fixture should match something"
        assert shas == expected


def test_a_peers_share_by_sha256_and_of_an_account_serving_nothing(two_accounts):
    store, live = two_accounts
    sha = next(f.sha256 for f in live["a"] if f.sha256 not in {g.sha256 for g in live["b"]})
    assert [m.sha256 for m in store.query(Query(sha256=sha[:8], peer="a"), NOW)] == [sha]
    assert store.query(Query(sha256=sha[:8], peer="b"), NOW) == []
    store.add_account("c", "not-a-hash")
    assert store.query(Query(peer="c"), NOW) == []
    assert store.query(Query(peer="nobody"), NOW) == []


def test_the_browsed_peers_sources_are_listed_however_many_others_hold_it(tmp_path: Path):
    store = SqliteStore(str(tmp_path / "tracker.db"))
    sha = "ab" * 32
    store.add_account("crowd", "not-a-hash")
    store.add_account("me", "not-a-hash")
    for i in range(100):
        session = store.open_session("crowd", f"crowd-{i}", f"127.0.0.1:{8000 + i}", NOW + 600, NOW).token_hash
        store.replace_index(session, [FileRecord(f"crowd/{i}.bin", 5, sha, 1 << 20, sha)])
    mine = store.open_session("me", "me-0", "127.0.0.1:9000", NOW + 600, NOW).token_hash
    store.replace_index(mine, [FileRecord("mine/zz.bin", 5, sha, 1 << 20, sha)])
    for _ in range(5):  # the other sources are a fresh sample each time; mine is always in it
        (match,) = store.query(Query(peer="me"), NOW)
        assert match.name == "mine/zz.bin"
        assert len(match.sources) == 64 and match.sources[0].peer_name == "me"
    (anyone,) = store.query(Query(), NOW)
    assert anyone.name == "crowd/0.bin"  # without a peer: the first name among the sources
