"""The tracker end to end over gRPC: a real server on loopback and a real SQLite file."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from p2p.v1 import tracker_pb2 as tpb
from p2p_common.auth import bearer_metadata
from p2p_common.errors import Busy
from peer import tracker_client
from peer.manifest import Manifest
from peer.share import SharedFile
from tests.helpers import TrackerClientForTests, file_entry, sha256_hex, wait_for
from tracker import service, sqlite_store
from tracker.auth import token_hash

REPLACE, UPDATE = tpb.INDEX_MODE_REPLACE, tpb.INDEX_MODE_UPDATE


def code_of(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value.code(), info.value.details()


def test_login_registers_then_checks_password(client_factory, tracker):
    c = client_factory()
    first = c.login("alice", "secret")
    assert first.registered and first.lease_seconds == 60 and len(first.session_token) >= 22
    again = c.login("alice", "secret")
    assert not again.registered and again.session_token != first.session_token
    for token in (first.session_token, again.session_token):  # one account, several live sessions
        c.stub.Heartbeat(tpb.HeartbeatRequest(), metadata=bearer_metadata(token), timeout=5)
    code, msg = code_of(c.login, "alice", "wrong")
    assert code == grpc.StatusCode.UNAUTHENTICATED and "wrong password" in msg


def test_repeated_wrong_passwords_make_the_next_try_wait(start_tracker_at):
    tracker = start_tracker_at(free_failed_logins=2)
    c = TrackerClientForTests(f"127.0.0.1:{tracker.port}")
    c.login("alice", "secret")
    for _ in range(2):
        code, msg = code_of(c.login, "alice", "guess")
        assert code == grpc.StatusCode.UNAUTHENTICATED and "wrong password" in msg
    code, msg = code_of(c.login, "alice", "secret")  # even the right one, for now: no scrypt run at all
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "2 wrong passwords for 'alice'" in msg and "try again in" in msg
    assert c.login("bob", "pw").registered  # other accounts are not held up

    def right_password_works() -> bool:
        try:
            return bool(c.login("alice", "secret").session_token)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            return False

    wait_for(right_password_works, timeout=15, interval=0.2, what="the 2 s wait to pass")
    code, _ = code_of(c.login, "alice", "guess")  # the right password cleared the count
    assert code == grpc.StatusCode.UNAUTHENTICATED
    c.close()


def test_a_login_refused_while_the_tracker_is_busy_hashing_waits_and_gets_in(tracker):
    """A lab logging in at once: a login refused for want of a free password-hashing slot is
    told so with a retry-after-ms trailer (a wrong-password wait has none) and asked again."""
    from peer.tracker_client import TrackerClient

    guard = tracker.directory.login_guard
    guard.wait_seconds = 0.0  # refuse at once, not after 2 s
    held = contextlib.ExitStack()  # every slot taken, as by logins hashing their passwords
    with pytest.raises(Busy):
        while True:
            held.enter_context(guard.hashing())
    raw = TrackerClientForTests(f"127.0.0.1:{tracker.port}")
    with pytest.raises(grpc.RpcError) as refused:
        raw.login("dora", "pw")
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ("retry-after-ms", "1000") in refused.value.trailing_metadata()
    raw.close()
    threading.Timer(1.5, held.close).start()
    client = TrackerClient(f"127.0.0.1:{tracker.port}", "dora", "pw")
    try:
        started = time.monotonic()
        client.login()
        assert client.logged_in and time.monotonic() - started >= 1.0  # refused, then let in
    finally:
        client.close()
    assert guard.refused_busy >= 3  # the test's own probe, the raw login, the first try


def test_tokens_and_passwords_are_stored_only_as_hashes(client_factory, tracker, tmp_path):
    c = client_factory()
    reply = c.login("alice", "hunter22")
    db = sqlite3.connect(tmp_path / "tracker.db")
    (stored_hash,) = db.execute("SELECT token_hash FROM sessions").fetchone()
    (pw,) = db.execute("SELECT password_hash FROM accounts").fetchone()
    assert stored_hash == token_hash(reply.session_token) and reply.session_token not in stored_hash
    assert pw.startswith("scrypt$") and "hunter22" not in pw


@pytest.mark.parametrize(
    ("name", "password", "address", "fragment"),
    [
        ("", "pw", "", "account name"),
        ("bad name", "pw", "", "account name"),
        ("x" * 65, "pw", "", "account name"),
        ("bob", "", "", "password"),
        ("bob", "pw", "no-port", "host:port"),
        ("bob", "pw", "host:99999", "host:port"),
        ("bob", "pw", ":", "host:port"),
        ("bob", "pw", ":99999", "host:port"),
    ],
)
def test_login_rejects_bad_input(client_factory, name, password, address, fragment):
    code, msg = code_of(client_factory().login, name, password, address)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and fragment in msg


def ipv6_loopback() -> bool:
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return True
    return False


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_an_address_given_as_a_port_is_listed_under_the_host_the_login_came_from(start_tracker_at, host):
    """As a BitTorrent tracker takes an announce's source address: a peer listening on every
    interface cannot tell which of its addresses the others reach it by."""
    if host == "[::1]" and not ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    tracker = start_tracker_at(listen=f"{host}:0")
    seed, user = TrackerClientForTests(f"{host}:{tracker.port}"), TrackerClientForTests(f"{host}:{tracker.port}")
    try:
        assert seed.login("seed", "pw", ":6001").address == f"{host}:6001"
        seed.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("song.mp3", b"la")]))
        assert user.login("user", "pw").address == ""  # client-only
        (found,) = user.query("song").files
        assert [(s.peer_name, s.address) for s in found.sources] == [("seed", f"{host}:6001")]
        assert seed.login("seed", "pw", "peer.example:7000").address == "peer.example:7000"  # as given
    finally:
        seed.close()
        user.close()


def test_closed_registration_refuses_unknown_names(start_tracker_at, tmp_path):
    from tests.helpers import TrackerClientForTests

    tracker = start_tracker_at(open_registration=False)
    tracker.directory.add_account("carol", "pw")
    c = TrackerClientForTests(f"127.0.0.1:{tracker.port}")
    try:
        code, msg = code_of(c.login, "mallory", "pw")
        assert code == grpc.StatusCode.UNAUTHENTICATED and "registration is closed" in msg
        assert c.login("carol", "pw").registered is False
    finally:
        c.close()


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ((), "missing"),
        ((("authorization", "Basic abc"),), "Bearer"),
        ((("authorization", "Bearer "),), "empty"),
        ((("authorization", "Bearer not-a-real-token"),), "unknown or expired"),
    ],
)
def test_every_rpc_but_login_needs_a_live_session(client_factory, metadata, fragment):
    c = client_factory()
    for call, request in (
        (c.stub.Heartbeat, tpb.HeartbeatRequest()),
        (c.stub.Query, tpb.QueryRequest()),
        (c.stub.ListPeers, tpb.ListPeersRequest()),
        (c.stub.Logout, tpb.LogoutRequest()),
        (c.stub.IssuePeerTicket, tpb.IssuePeerTicketRequest(audience="x")),
    ):
        code, msg = code_of(call, request, metadata=metadata, timeout=5)
        assert code == grpc.StatusCode.UNAUTHENTICATED and fragment in msg
    code, msg = code_of(c.stub.SendIndex, iter([tpb.SendIndexRequest(mode=REPLACE)]), metadata=metadata, timeout=5)
    assert code == grpc.StatusCode.UNAUTHENTICATED and fragment in msg


def test_send_index_and_query_by_name_glob_and_sha(client_factory):
    peer = client_factory()
    peer.login("alice", address="127.0.0.1:7001")
    files = [
        file_entry("music/Song One.mp3", b"one"),
        file_entry("docs/report.PDF", b"two"),
        file_entry("docs/notes.txt", b"three"),
    ]
    assert peer.send_index(tpb.SendIndexRequest(mode=REPLACE, add=files)).file_count == 3

    searcher = client_factory()
    searcher.login("bob")  # client-only
    by_substring = searcher.query("song one")
    assert [f.name for f in by_substring.files] == ["music/Song One.mp3"]
    match = by_substring.files[0]
    assert match.sha256 == sha256_hex(b"one") and match.size == 3
    assert [(s.peer_name, s.address, s.name) for s in match.sources] == [("alice", "127.0.0.1:7001", "music/Song One.mp3")]
    assert {f.name for f in searcher.query("docs/*").files} == {"docs/report.PDF", "docs/notes.txt"}
    assert [f.name for f in searcher.query("*.pdf").files] == ["docs/report.PDF"]
    assert [f.name for f in searcher.query("?ocs/notes.txt").files] == ["docs/notes.txt"]
    assert [f.name for f in searcher.query(sha256=sha256_hex(b"two")).files] == ["docs/report.PDF"]
    assert len(searcher.query("").files) == 3
    assert searcher.query("nothing-like-this").files == []
    assert [f.name for f in searcher.query("no").files] == ["docs/notes.txt"]  # too short for the trigram index


def test_short_patterns_and_special_characters_match_literally(client_factory):
    peer = client_factory()
    peer.login("alice", address="127.0.0.1:7001")
    names = ["a_b.txt", "a%b.txt", "axb.txt"]
    peer.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry(n, n.encode()) for n in names]))
    assert [f.name for f in peer.query("a_b").files] == ["a_b.txt"]
    assert [f.name for f in peer.query("a%").files] == ["a%b.txt"]
    assert sorted(f.name for f in peer.query("xb").files) == ["axb.txt"]


def test_names_match_whatever_their_accents_case_and_normal_form(client_factory):
    """A Mac writes "Café" decomposed; people type "cafe", "CAFÉ" or "straße" for "STRASSE"."""
    peer = client_factory()
    peer.login("alice", address="127.0.0.1:7001")
    readme = "".join(chr(ord(c) + 0xFEE0) for c in "README")  # in fullwidth letters
    names = ["Café del Mar.flac", "cafe\u0301 olé (mac).flac", "STRASSE.txt", f"{readme}.md", "かがみ.txt", "かかし.txt"]
    peer.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry(n, n.encode()) for n in names]))
    both_cafes = ["Café del Mar.flac", "cafe\u0301 olé (mac).flac"]
    for typed in ["café", "cafe\u0301", "CAFE", "Cafè", "caf?*"]:
        assert sorted(f.name for f in peer.query(typed).files) == both_cafes, typed
    assert [f.name for f in peer.query("straße").files] == ["STRASSE.txt"]
    assert [f.name for f in peer.query("readme").files] == [f"{readme}.md"]
    assert [f.name for f in peer.query("かが").files] == ["かがみ.txt"]  # voicing makes another kana
    assert [f.name for f in peer.query("ole (").files] == ["cafe\u0301 olé (mac).flac"]


def test_a_content_under_several_names_lists_those_that_match(client_factory):
    peer = client_factory()
    peer.login("alice", address="127.0.0.1:7001")
    names = ["proj/pkg/__init__.py", "proj/pkg/sub/__init__.py", "other/__init__.py"]
    peer.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry(n, b"") for n in names] + [file_entry("proj/a.py", b"a")]))
    by_name = {f.name: f for f in peer.query("proj/*").files}
    assert list(by_name["proj/a.py"].matched_names) == []  # one name: it is the match's name
    (empty,) = [f for f in by_name.values() if f.sha256 == sha256_hex(b"")]
    assert list(empty.matched_names) == ["proj/pkg/__init__.py", "proj/pkg/sub/__init__.py"]
    assert sorted(peer.query("__init__").files[0].matched_names) == sorted(names)
    assert list(peer.query(sha256=sha256_hex(b"")).files[0].matched_names) == []  # no pattern


def test_glob_classes_including_a_literal_bracket(client_factory):
    peer = client_factory()
    peer.login("alice", address="127.0.0.1:7001")
    names = ["take[1].wav", "take2.wav", "take3.wav"]
    peer.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry(n, n.encode()) for n in names]))
    assert sorted(f.name for f in peer.query("take[12].wav").files) == ["take2.wav"]
    assert sorted(f.name for f in peer.query("take[^2]*").files) == ["take3.wav", "take[1].wav"]
    assert [f.name for f in peer.query("take[[]*").files] == ["take[1].wav"]
    assert [f.name for f in peer.query("take[[]1[]]*").files] == ["take[1].wav"]


def test_same_content_from_several_peers_is_one_match(client_factory):
    for i, name in enumerate(["alice", "bob", "carol"]):
        c = client_factory()
        c.login(name, address=f"127.0.0.1:{7001 + i}")
        c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry(f"{name}-copy.iso", b"same bytes")]))
    reply = c.query("copy.iso")
    assert len(reply.files) == 1
    assert sorted(s.peer_name for s in reply.files[0].sources) == ["alice", "bob", "carol"]


def test_peers_still_downloading_are_listed_as_partial_sources_after_whole_ones(client_factory):
    for i, (name, partial) in enumerate([("alice", True), ("bob", False), ("carol", True)]):
        c = client_factory()
        c.login(name, address=f"127.0.0.1:{7001 + i}")
        entry = file_entry("movie.mkv", b"the movie")
        entry.partial = partial
        c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[entry]))
    (match,) = c.query("movie").files
    assert [(s.peer_name, s.partial) for s in match.sources] == [("bob", False), ("alice", True), ("carol", True)]
    done = file_entry("movie.mkv", b"the movie")  # carol's download completed: published whole
    c.send_index(tpb.SendIndexRequest(mode=UPDATE, add=[done]))
    (match,) = c.query("movie").files
    assert sorted((s.peer_name, s.partial) for s in match.sources) == [("alice", True), ("bob", False), ("carol", False)]


def test_a_database_of_an_earlier_version_gains_the_partial_column(tmp_path):
    from tracker.sqlite_store import SqliteStore
    from tracker.store import FileRecord, Query

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as c:  # the files table as versions before partial sources made it
        c.executescript(
            "CREATE TABLE files (id INTEGER PRIMARY KEY, session_id INTEGER NOT NULL, name TEXT NOT NULL,"
            " name_lower TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, chunk_size INTEGER NOT NULL,"
            " chunk_list_sha256 TEXT NOT NULL, UNIQUE (session_id, name));"
        )
    store = SqliteStore(str(db))
    try:
        store.add_account("alice", "hash")
        session = store.open_session("alice", "t" * 64, "127.0.0.1:1", time.time() + 60, time.time())
        store.replace_index(session.token_hash, [FileRecord("a.bin", 1, "a" * 64, 1 << 20, "b" * 64, partial=True)])
        (match,) = store.query(Query(sha256="a" * 64), time.time())
        assert match.sources[0].partial is True
    finally:
        store.close()


def test_a_database_of_an_earlier_version_gains_the_disabled_column_also_beside_a_running_tracker(tmp_path):
    from tracker.sqlite_store import SqliteStore

    for accounts_only in (False, True):  # `p2p-tracker user` opens it beside a running tracker
        db = tmp_path / f"old-{accounts_only}.db"
        with sqlite3.connect(db) as c:  # the accounts table as versions before `user disable` made it
            c.execute("CREATE TABLE accounts (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_at REAL NOT NULL)")
            c.execute("INSERT INTO accounts VALUES ('carol', 'hash', 0)")
        store = SqliteStore(str(db), accounts_only=accounts_only)
        try:
            assert store.account("carol").disabled is False
            store.set_disabled("carol", True)
            assert store.account("carol").disabled is True
        finally:
            store.close()


def test_client_only_sessions_cannot_publish(client_factory):
    c = client_factory()
    c.login("bob")
    code, msg = code_of(c.send_index, tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("a")]))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "client-only" in msg


def test_incremental_update_adds_and_removes(client_factory):
    c = client_factory()
    c.login("alice", address="127.0.0.1:7001")
    c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("a.txt", b"a"), file_entry("b.txt", b"b")]))
    reply = c.send_index(
        tpb.SendIndexRequest(mode=UPDATE, add=[file_entry("c.txt", b"c"), file_entry("a.txt", b"a2")], remove=["b.txt"])
    )
    assert reply.file_count == 2
    assert sorted((f.name, f.sha256) for f in c.query("").files) == sorted(
        [("a.txt", sha256_hex(b"a2")), ("c.txt", sha256_hex(b"c"))]
    )


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (tpb.FileEntry(name="/etc/passwd"), "absolute"),
        (tpb.FileEntry(name="../up"), "'..'"),
        (tpb.FileEntry(name="a/./b"), "'.'"),
        (tpb.FileEntry(name="nul\x00byte"), "control"),
        (tpb.FileEntry(name="tab\tname"), "control"),
        (tpb.FileEntry(name="x" * 1025), "longer than"),
        (tpb.FileEntry(name=""), "empty"),
    ],
)
def test_bad_index_entries_are_rejected_by_name_and_nothing_is_applied(client_factory, entry, fragment, monkeypatch):
    monkeypatch.setattr(sqlite_store, "STAGE_SLICE", 1)  # the good entry is stored before the bad one comes
    c = client_factory()
    c.login("alice", address="127.0.0.1:7001")
    c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("keep.txt")]))
    good = file_entry("new-good.txt", b"g")
    bad = file_entry("placeholder")
    bad.name = entry.name
    code, msg = code_of(c.send_index, tpb.SendIndexRequest(mode=REPLACE, add=[good]), tpb.SendIndexRequest(add=[bad]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and fragment in msg
    assert [f.name for f in c.query("").files] == ["keep.txt"]


def test_bad_digests_sizes_and_modes(client_factory):
    c = client_factory()
    c.login("alice", address="127.0.0.1:7001")
    cases = []
    e = file_entry("a.txt")
    e.sha256 = "ABC"
    cases.append((tpb.SendIndexRequest(mode=REPLACE, add=[e]), "sha256"))
    e = file_entry("a.txt")
    e.chunk_list_sha256 = "0" * 63
    cases.append((tpb.SendIndexRequest(mode=REPLACE, add=[e]), "chunk_list_sha256"))
    e = file_entry("a.txt")
    e.chunk_size = 1000
    cases.append((tpb.SendIndexRequest(mode=REPLACE, add=[e]), "chunk_size"))
    cases.append((tpb.SendIndexRequest(add=[file_entry("a.txt")]), "mode"))
    cases.append((tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("a.txt"), file_entry("a.txt")]), "listed twice"))
    cases.append((tpb.SendIndexRequest(mode=REPLACE, remove=["x"]), "remove must be empty"))
    for request, fragment in cases:
        code, msg = code_of(c.send_index, request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and fragment in msg, msg
    code, msg = code_of(c.send_index)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "empty" in msg


def test_a_peer_cannot_publish_more_files_than_its_cap(start_tracker_at):
    tracker = start_tracker_at(max_files_per_session=5)
    c = TrackerClientForTests(f"127.0.0.1:{tracker.port}")
    c.login("alice", address="127.0.0.1:7001")
    code, msg = code_of(c.send_index, tpb.SendIndexRequest(mode=REPLACE, add=[file_entry(f"f{i}", b"%d" % i) for i in range(6)]))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 5 files; this index would hold 6" in msg
    assert (
        c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry(f"f{i}", b"%d" % i) for i in range(4)])).file_count == 4
    )
    more = tpb.SendIndexRequest(mode=UPDATE, add=[file_entry("g1", b"g1"), file_entry("g2", b"g2")])
    code, msg = code_of(c.send_index, more)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "would hold 6" in msg
    assert sorted(f.name for f in c.query("").files) == ["f0", "f1", "f2", "f3"]  # nothing of it applied
    swap = tpb.SendIndexRequest(mode=UPDATE, add=[file_entry("g1", b"g1"), file_entry("g2", b"g2")], remove=["f0", "f1"])
    assert c.send_index(swap).file_count == 4
    c.close()


def test_tracker_flags_come_from_their_variables(monkeypatch):
    import argparse

    from tracker.config import add_serve_flags, config_from_args

    monkeypatch.setenv("P2P_MAX_FILES_PER_SESSION", "1000")
    monkeypatch.setenv("P2P_LEASE", "30")
    parser = argparse.ArgumentParser()
    add_serve_flags(parser)
    config = config_from_args(parser.parse_args([]))
    assert (config.max_files_per_session, config.lease_seconds) == (1000, 30)
    assert config_from_args(parser.parse_args(["--max-files-per-session", "7"])).max_files_per_session == 7


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("P2P_LEASE", "10m", "argument --lease: invalid int value: '10m'"),
        ("P2P_WORKERS", "many", "argument --workers: invalid int value: 'many'"),
        ("P2P_LOG_LEVEL", "verbose", "argument --log-level: 'verbose' is not one of debug, info, warning, error"),
    ],
)
def test_a_bad_variable_is_a_usage_error_not_a_traceback(tmp_path, variable, value, said):
    env = {**os.environ, variable: value, "P2P_DB": str(tmp_path / "t.db"), "P2P_LISTEN": "127.0.0.1:0"}
    run = subprocess.run([sys.executable, "-m", "tracker"], env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and said in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_query_rejects_bad_input(client_factory):
    c = client_factory()
    c.login("bob")
    for kwargs, fragment in (
        ({"sha256": "xyz"}, "sha256"),
        ({"sha256": "abc1234"}, "8 or more"),  # too short a prefix to name anything
        ({"sha256": "ABCDEF12"}, "lowercase"),
        ({"sha256": "a" * 65}, "sha256"),
        ({"page_size": 5000}, "page_size"),
        ({"page_token": "garbage!"}, "page_token"),
        ({"pattern": "p" * 2000}, "name_pattern"),
        ({"pattern": "song[1"}, "no ']' closes"),
        ({"pattern": "*[]"}, "no ']' closes"),  # ']' first in a class is a member
    ):
        code, msg = code_of(c.query, **kwargs)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and fragment in msg


def test_query_by_sha256_prefix_finds_every_content_starting_with_it(client_factory):
    c = client_factory()
    c.login("alice", address="127.0.0.1:7001")
    # the tracker takes digests as published: five contents share their first 8 digits (and the
    # neighbours of that range, just below and just above it, must stay out)
    shas = [f"abcdef01{i}" + "7" * 55 for i in range(5)] + ["abcdef00" + "f" * 56, "abcdef02" + "0" * 56]
    entries = []
    for i, sha in enumerate(shas):
        entry = file_entry(f"f{i}.bin", str(i).encode())
        entry.sha256 = sha
        entries.append(entry)
    c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=entries))
    assert [f.sha256 for f in c.query(sha256=shas[3]).files] == [shas[3]]
    assert [f.sha256 for f in c.query(sha256=shas[3][:9]).files] == [shas[3]]
    found, token = [], ""
    for _ in range(10):  # two a page: page boundaries fall inside the prefix
        page = c.query(sha256="abcdef01", page_size=2, page_token=token)
        found.extend(f.sha256 for f in page.files)
        token = page.next_page_token
        if not token:
            break
    assert found == shas[:5]
    assert c.query(sha256="abcdef03").files == []


def test_query_paginates_without_gaps_or_repeats(client_factory):
    c = client_factory()
    c.login("alice", address="127.0.0.1:7001")
    c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry(f"f{i:03}.bin", str(i).encode()) for i in range(250)]))
    seen, token, pages = [], "", 0
    while True:
        page = c.query("bin", page_size=100, page_token=token)
        seen.extend(f.sha256 for f in page.files)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3 and len(seen) == 250 and len(set(seen)) == 250 and seen == sorted(seen)


def test_a_page_too_large_for_one_message_is_cut_and_continued(client_factory):
    """A lab of 64 peers sharing one course's files under long names: a page of 80 matches with
    64 sources each is ~5.5 MB, past a client's default message limit (4 MiB); it comes in pages
    of at most 3 MiB, each content once, in order, with every source."""
    folder = "course/" + "/".join(["a-long-folder-name-" * 4] * 12)  # ~920 bytes
    entries = [file_entry(f"{folder}/lecture-{i:02}.pdf", b"lecture %d" % i) for i in range(80)]
    for p in range(64):
        c = client_factory()
        c.login(f"student{p:02}", address=f"10.1.0.{p + 1}:50052")
        c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=entries))
    seen, token, pages = [], "", 0
    while True:
        page = c.query("lecture", page_size=1000, page_token=token)  # a channel of default limits
        assert page.ByteSize() <= 3 * 1024 * 1024 and page.files
        assert all(len(f.sources) == 64 for f in page.files)
        seen.extend(f.sha256 for f in page.files)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 2 and seen == sorted(e.sha256 for e in entries)


def test_a_full_disk_is_resource_exhausted_and_nothing_half_recorded(tracker, client_factory, caplog):
    """SQLite says "database or disk is full": the caller hears RESOURCE_EXHAUSTED saying so (was
    UNKNOWN, "Exception calling application"), the operator an error line, nothing of the call is
    kept, and once there is room the same call goes through."""
    alice, bob = client_factory(), client_factory()
    alice.login("alice", address="127.0.0.1:7001")
    alice.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("a.txt", b"a")]))
    bob.login("bob", address="127.0.0.1:7002")
    big = tpb.SendIndexRequest(mode=REPLACE, add=[file_entry(f"bob/{i:05}-{'x' * 80}.bin", b"%d" % i) for i in range(5000)])
    store = tracker.directory.store
    with store._write_lock:  # the writer's connection, between transactions: the database may not grow now
        (pages,) = store._writer_conn().execute("PRAGMA page_count").fetchone()
        store._writer_conn().execute(f"PRAGMA max_page_count = {pages}")
    code, details = code_of(bob.send_index, big)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
    assert "the tracker's disk is full" in details
    assert "disk is full" in caplog.text
    assert [f.name for f in bob.query("").files] == ["a.txt"]  # nothing of bob's index, alice's still there
    with store._write_lock:
        store._writer_conn().execute("PRAGMA max_page_count = 4294967294")
    assert bob.send_index(big).file_count == 5000
    assert len(bob.query("bin", page_size=1000).files) == 1000


def test_send_index_of_100k_files_streams_in_batches(client_factory):
    c = client_factory()
    c.login("alice", address="127.0.0.1:7001")
    entries = [file_entry(f"dir{i % 100}/file-{i}.dat", i.to_bytes(4, "big")) for i in range(100_000)]
    batches = [
        tpb.SendIndexRequest(mode=REPLACE if i == 0 else 0, add=entries[i : i + 5000]) for i in range(0, len(entries), 5000)
    ]
    assert c.send_index(*batches).file_count == 100_000
    assert [f.name for f in c.query("file-99999.dat").files] == ["dir99/file-99999.dat"]


def test_logout_removes_files_at_once(client_factory, tmp_path):
    peer, searcher = client_factory(), client_factory()
    peer.login("alice", address="127.0.0.1:7001")
    peer.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("gone.txt")]))
    searcher.login("bob")
    assert len(searcher.query("gone").files) == 1
    peer.stub.Logout(tpb.LogoutRequest(), metadata=peer.md, timeout=5)
    assert searcher.query("gone").files == []
    code, _ = code_of(peer.stub.Heartbeat, tpb.HeartbeatRequest(), metadata=peer.md, timeout=5)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    db = sqlite3.connect(tmp_path / "tracker.db")  # and the reaper deletes its rows soon after
    try:
        wait_for(lambda: db.execute("SELECT count(*) FROM files").fetchone()[0] == 0, timeout=10, what="the files deleted")
        assert db.execute("SELECT count(*) FROM sessions WHERE address <> ''").fetchone()[0] == 0
    finally:
        db.close()


def test_lease_expiry_hides_files_and_heartbeat_keeps_them(start_tracker_at):
    from tests.helpers import TrackerClientForTests

    tracker = start_tracker_at(lease_seconds=2)
    addr = f"127.0.0.1:{tracker.port}"
    silent, alive, searcher = TrackerClientForTests(addr), TrackerClientForTests(addr), TrackerClientForTests(addr)
    try:
        silent.login("silent", address="127.0.0.1:7001")
        alive.login("alive", address="127.0.0.1:7002")
        for c in (silent, alive):
            c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("shared.txt", c.token.encode())]))
        searcher.login("bob")
        assert len(searcher.query("shared").files) == 2
        started = time.monotonic()

        def only_alive_left() -> bool:
            alive.stub.Heartbeat(tpb.HeartbeatRequest(), metadata=alive.md, timeout=5)
            searcher.stub.Heartbeat(tpb.HeartbeatRequest(), metadata=searcher.md, timeout=5)
            peers = [s.peer_name for f in searcher.query("shared").files for s in f.sources]
            return peers == ["alive"]

        wait_for(only_alive_left, timeout=6, interval=0.2, what="the silent peer to expire")
        assert time.monotonic() - started >= 1.0  # not before its lease ran out
        code, _ = code_of(silent.stub.Heartbeat, tpb.HeartbeatRequest(), metadata=silent.md, timeout=5)
        assert code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        for c in (silent, alive, searcher):
            c.close()


def test_a_session_sending_its_index_for_longer_than_a_lease_stays_alive(start_tracker_at):
    """A peer cannot send a heartbeat while its SendIndex streams: one slower than a lease (a large
    index over a slow link) had its session expire under it, and its peer looped, logging in and
    sending it all again. A stream coming in renews the lease."""
    tracker = start_tracker_at(lease_seconds=2)
    peer = TrackerClientForTests(f"127.0.0.1:{tracker.port}")
    try:
        peer.login("slow", address="127.0.0.1:7001")

        def slowly() -> Iterator[tpb.SendIndexRequest]:
            for i in range(10):  # 5 s in all; the reaper, every second, ends a session 2 s unrenewed
                yield tpb.SendIndexRequest(mode=REPLACE if i == 0 else 0, add=[file_entry(f"f{i}", b"%d" % i)])
                time.sleep(0.5)

        assert peer.stub.SendIndex(slowly(), metadata=peer.md, timeout=30).file_count == 10
        assert peer.stub.Heartbeat(tpb.HeartbeatRequest(), metadata=peer.md, timeout=5).lease_seconds == 2
        assert len(peer.query("f").files) == 10
    finally:
        peer.close()


def _shared(name: str) -> SharedFile:
    sha = sha256_hex(name.encode())
    return SharedFile(name, 0, 0, Manifest(sha, len(name), 1 << 20, (bytes.fromhex(sha),)))


def test_a_large_update_goes_in_streams_the_tracker_takes(tracker, monkeypatch):
    """The tracker holds an update whole in memory, so it takes at most MAX_UPDATE_ENTRIES a
    stream; the peer sends a larger one in several, removals first."""
    monkeypatch.setattr(service, "MAX_UPDATE_ENTRIES", 10)
    monkeypatch.setattr(tracker_client, "UPDATE_ENTRIES", 4)
    raw = TrackerClientForTests(f"127.0.0.1:{tracker.port}")
    raw.login("raw", address="127.0.0.1:7001")
    code, msg = code_of(
        raw.send_index, tpb.SendIndexRequest(mode=UPDATE, add=[file_entry(f"f{i}", b"%d" % i) for i in range(11)])
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most 10 entries" in msg and raw.query("").files == []
    peer = tracker_client.TrackerClient(f"127.0.0.1:{tracker.port}", "peer", "pw", advertise="127.0.0.1:7002")
    peer.login()
    try:
        assert peer.send_index(True, [_shared(f"old{i}") for i in range(3)]) == 3
        assert peer.send_index(False, [_shared(f"new{i}") for i in range(9)], ["old0", "old1"]) == 10
        assert sorted(f.name for f in raw.query("", page_size=100).files) == [*(f"new{i}" for i in range(9)), "old2"]
    finally:
        peer.close()
        raw.close()


def test_a_peer_removing_names_past_the_message_size_limit_publishes_it(tracker):
    """Removing 110,000 names (~9.6 MB of them) went in one message, over the 8 MiB message limit:
    the tracker refused it, the changes were kept for the next round, and refused again, for ever."""
    peer = tracker_client.TrackerClient(f"127.0.0.1:{tracker.port}", "peer", "pw", advertise="127.0.0.1:7002")
    peer.login()
    try:
        assert peer.send_index(True, [_shared("keep.txt"), _shared("gone.txt")]) == 2
        gone = ["gone.txt", *(f"{'old-folder/' * 7}{i:06}.txt" for i in range(110_000))]
        assert peer.send_index(False, [_shared("new.txt")], gone) == 2
    finally:
        peer.close()


def test_relogin_from_same_address_replaces_the_old_session(client_factory):
    c = client_factory()
    c.login("alice", address="127.0.0.1:7001")
    c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("a.txt")]))
    c.login("alice", address="127.0.0.1:7001")
    c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("a.txt")]))
    assert len(c.query("a.txt").files[0].sources) == 1
    peers = c.stub.ListPeers(tpb.ListPeersRequest(), metadata=c.md, timeout=5).peers
    assert [(p.name, p.address, p.file_count) for p in peers] == [("alice", "127.0.0.1:7001", 1)]


def test_list_peers_comes_in_pages_in_name_order_or_names_one_account(client_factory, client):
    """Every serving peer a page at a time (10,000 peers of a million files listed whole took the
    tracker 60 ms a call), and one account's places alone, as `put --to` and `status` ask (they
    listed every peer to find one)."""
    for name, port in [("carol", 7003), ("alice", 7011), ("bob", 7002), ("alice", 7001), ("dave", 7004)]:
        client_factory().login(name, address=f"127.0.0.1:{port}")
    c = client_factory()
    c.login("reader")  # client-only: never listed
    listed, token, pages = [], "", 0
    while True:
        page = c.stub.ListPeers(tpb.ListPeersRequest(page_size=2, page_token=token), metadata=c.md, timeout=5)
        listed += [(p.name, p.address) for p in page.peers]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    alice = [("alice", "127.0.0.1:7001"), ("alice", "127.0.0.1:7011")]
    assert listed == [*alice, ("bob", "127.0.0.1:7002"), ("carol", "127.0.0.1:7003"), ("dave", "127.0.0.1:7004")]
    assert pages == 3
    one = c.stub.ListPeers(tpb.ListPeersRequest(name="alice"), metadata=c.md, timeout=5)
    assert [(p.name, p.address) for p in one.peers] == alice and not one.next_page_token
    assert not c.stub.ListPeers(tpb.ListPeersRequest(name="nobody"), metadata=c.md, timeout=5).peers
    assert [(p.name, p.address) for p in client.peers(page_size=2)] == listed  # the peer's client follows pages
    assert [(p.name, p.address) for p in client.peers("alice", page_size=1)] == alice
    for request, said in [
        (tpb.ListPeersRequest(page_token="bm9wZQ=="), "page_token is not one this tracker issued"),
        (tpb.ListPeersRequest(page_size=1001), "page_size must be at most 1000"),
    ]:
        assert code_of(c.stub.ListPeers, request, metadata=c.md, timeout=5) == (grpc.StatusCode.INVALID_ARGUMENT, said)


def test_a_new_password_ends_the_sessions_opened_with_the_old_one(tracker, client_factory):
    """Passwords are changed when they leak: a session of the old one must not live on, renewed."""
    thief, owner = client_factory(), client_factory()
    thief.login("alice", "old", address="127.0.0.1:7001")
    owner.login("bob", "pw")
    assert tracker.directory.set_password("alice", "new") == 1
    code, msg = code_of(thief.query, "x")
    assert code == grpc.StatusCode.UNAUTHENTICATED and "log in again" in msg
    code, _ = code_of(thief.login, "alice", "old")
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert thief.login("alice", "new").registered is False and thief.query("x").files == []
    assert owner.query("x").files == []  # other accounts' sessions go on


def test_a_disabled_account_is_refused_and_its_sessions_end_until_it_is_enabled(tracker, client_factory):
    """Under open registration a deleted account came back at its peer's next login; a disabled
    one keeps its name and is refused."""
    peer, other = client_factory(), client_factory()
    peer.login("mallory", "pw", address="127.0.0.1:7001")
    other.login("bob", "pw")
    assert tracker.directory.store.set_disabled("mallory", True) == 1
    code, msg = code_of(peer.query, "x")
    assert code == grpc.StatusCode.UNAUTHENTICATED and "log in again" in msg
    code, msg = code_of(peer.login, "mallory", "pw")
    assert code == grpc.StatusCode.PERMISSION_DENIED and msg == "account 'mallory' is disabled by the tracker's operator"
    code, msg = code_of(peer.login, "mallory", "guess")  # nothing told to whoever lacks the password
    assert code == grpc.StatusCode.UNAUTHENTICATED and "wrong password" in msg
    assert other.query("x").files == []  # other accounts' sessions go on
    assert [(a.name, a.disabled) for a in tracker.directory.store.accounts()] == [("bob", False), ("mallory", True)]
    assert tracker.directory.store.set_disabled("mallory", False) == 0
    assert peer.login("mallory", "pw").registered is False


def test_accounts_survive_a_restart(start_tracker_at):
    from tests.helpers import TrackerClientForTests

    first = start_tracker_at()
    c = TrackerClientForTests(f"127.0.0.1:{first.port}")
    assert c.login("alice", "pw1").registered
    c.close()
    first.stop(grace=0)
    second = start_tracker_at()
    c = TrackerClientForTests(f"127.0.0.1:{second.port}")
    try:
        assert c.login("alice", "pw1").registered is False
        code, _ = code_of(c.login, "alice", "other")
        assert code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        c.close()


def test_a_login_says_when_the_tracker_cannot_connect_to_the_address_listed(start_tracker_at, caplog):
    """As an eDonkey server tells a client it cannot reach (its "LowID"): a mistyped --advertise or
    a closed firewall otherwise shows only as downloads failing on other hosts."""
    tracker = start_tracker_at(probe_seconds=2)
    c = TrackerClientForTests(f"127.0.0.1:{tracker.port}")
    listening = socket.create_server(("127.0.0.1", 0))
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    try:
        assert c.login("open", address=f"127.0.0.1:{listening.getsockname()[1]}").reachability_problem == ""
        with caplog.at_level("INFO", logger="tracker.directory"):
            refused = c.login("shut", address=f"127.0.0.1:{closed_port}")
        assert refused.reachability_problem.startswith("connection refused") and refused.session_token  # listed all the same
        assert f"login shut address=127.0.0.1:{closed_port} registered=True unreachable: connection refused" in caplog.text
        assert c.login("client").reachability_problem == ""  # a client-only session: nothing to try
    finally:
        listening.close()
        c.close()
    quiet = start_tracker_at(probe_seconds=0, db=":memory:")
    c = TrackerClientForTests(f"127.0.0.1:{quiet.port}")
    try:
        assert c.login("shut", address=f"127.0.0.1:{closed_port}").reachability_problem == ""  # not tried
    finally:
        c.close()


def test_a_try_that_outlasts_the_login_is_told_by_a_heartbeat(start_tracker_at, caplog):
    """A port a firewall drops answers nothing until the try's timeout: a login must not hold an
    RPC thread that long (a lab of such peers logging in at once would hold them all)."""
    from peer.tracker_client import TrackerClient

    tracker = start_tracker_at(probe_seconds=1.5)
    full = socket.create_server(("127.0.0.1", 0), backlog=0)  # never accepts: with one connection
    waiting = socket.create_connection(full.getsockname())  # queued, later connects go unanswered
    address = f"127.0.0.1:{full.getsockname()[1]}"
    c = TrackerClient(f"127.0.0.1:{tracker.port}", "slow", "pw", advertise=address)  # as `serve` logs in
    try:
        started = time.monotonic()
        c.login()
        assert time.monotonic() - started < 1.2 and c.reachability_problem == ""  # not known yet
        with caplog.at_level("WARNING", logger="peer.tracker_client"):
            said = wait_for(lambda: c.heartbeat() and c.reachability_problem, timeout=10, what="the try's outcome")
            for _ in range(2):
                c.heartbeat()
        assert said == "no answer within 1.5 s (a firewall drops it, or no such host on this network)"
        warned = [r.getMessage() for r in caplog.records if "could not connect" in r.getMessage()]
        assert warned == [
            f"the tracker could not connect to this peer at {address}: {said}; peers on other hosts likely"
            " cannot either (check --advertise, P2P_ADVERTISE, and the firewall or the container's published ports)"
        ]
    finally:
        c.close()
        waiting.close()
        full.close()


def test_a_backup_taken_while_serving_restores_the_accounts_and_no_stale_peer(start_tracker_at, tmp_path, capsys):
    from tracker.__main__ import main as tracker_main

    live = start_tracker_at()
    db, backup = live.directory.store._path, tmp_path / "nightly" / "tracker-backup.db"
    c = TrackerClientForTests(f"127.0.0.1:{live.port}")
    c.login("alice", "pw1", address="127.0.0.1:7001")
    c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("music/song.mp3")]))
    assert c.login("mallory", "pw2").registered
    live.directory.store.set_disabled("mallory", True)
    ticket_key = live.directory.store.secret("ticket-hmac", 32)
    assert tracker_main(["backup", str(backup), "--db", db]) == 1  # its folder is missing
    said = capsys.readouterr().err
    assert said == f"p2p-tracker: cannot write the backup {backup}: its folder does not exist or is not writable\n"
    backup.parent.mkdir()
    backup.write_text("last night's, replaced")
    assert tracker_main(["backup", str(backup), "--db", db]) == 0
    assert capsys.readouterr().out.startswith(f"backed up 2 accounts of {db} to {backup}")
    assert sorted(p.name for p in backup.parent.iterdir()) == ["tracker-backup.db"]  # one file: nothing aside, no WAL
    for wrong, said in [(str(tmp_path), "is a folder"), (db, "is the database itself")]:
        assert tracker_main(["backup", wrong, "--db", db]) == 1
        assert said in capsys.readouterr().err
    c.close()
    live.stop(grace=0)

    restored = start_tracker_at(db=str(backup))
    c = TrackerClientForTests(f"127.0.0.1:{restored.port}")
    try:
        assert c.login("alice", "pw1").registered is False  # her account and password came back
        assert code_of(c.login, "alice", "pw2")[0] == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(c.login, "mallory", "pw2")[0] == grpc.StatusCode.PERMISSION_DENIED  # still disabled
        assert c.query("song").files == []  # her session and files were not restored: she publishes again
        assert restored.directory.store.secret("ticket-hmac", 32) == ticket_key
    finally:
        c.close()


def test_sessions_and_name_search_survive_a_restart(start_tracker_at):
    """The vocabulary is rebuilt from the database: a restarted tracker still finds by substring."""
    from tests.helpers import TrackerClientForTests

    first = start_tracker_at()
    c = TrackerClientForTests(f"127.0.0.1:{first.port}")
    c.login("alice", address="127.0.0.1:7001")
    c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("music/Gaibu Duga.mp3")]))
    wait_for(lambda: first.directory.store.maintain(1.0) is False, timeout=5, what="the name index to catch up")
    token = c.token
    c.close()
    first.stop(grace=0)
    second = start_tracker_at()
    c = TrackerClientForTests(f"127.0.0.1:{second.port}")
    c.token = token  # the session lives on in the database
    try:
        assert [f.name for f in c.query("aibu du").files] == ["music/Gaibu Duga.mp3"]
        assert [f.name for f in c.query("*/g?ibu*.MP3").files] == ["music/Gaibu Duga.mp3"]
        assert [f.name for f in c.query("du").files] == ["music/Gaibu Duga.mp3"]  # shorter than a trigram
    finally:
        c.close()


def test_sessions_get_a_fresh_lease_after_a_restart_longer_than_the_lease(start_tracker_at, tmp_path):
    """Peers could not renew while the tracker was down: their sessions carry on, for a lease."""
    first = start_tracker_at(lease_seconds=2)
    peer = TrackerClientForTests(f"127.0.0.1:{first.port}")
    peer.login("alice", address="127.0.0.1:7001")
    peer.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("kept.iso", b"kept")]))
    token = peer.token
    peer.close()
    first.stop(grace=0)
    db = sqlite3.connect(tmp_path / "tracker.db")

    def lease_ran_out() -> bool:
        return db.execute("SELECT max(expires_at) FROM sessions").fetchone()[0] < time.time()

    wait_for(lease_ran_out, timeout=10, what="the lease to run out while the tracker is down")
    db.close()
    second = start_tracker_at(lease_seconds=2, resume_grace_seconds=1)
    searcher, peer = TrackerClientForTests(f"127.0.0.1:{second.port}"), TrackerClientForTests(f"127.0.0.1:{second.port}")
    try:
        searcher.login("bob")
        assert [f.name for f in searcher.query("kept").files] == ["kept.iso"]  # listed at once, no re-login
        peer.token = token
        peer.stub.Heartbeat(tpb.HeartbeatRequest(), metadata=peer.md, timeout=5)  # and renewable

        # a peer that is really gone still expires, a lease later
        def gone() -> bool:
            searcher.login("bob")  # its own lease is as short
            return not searcher.query("kept").files

        wait_for(gone, timeout=15, interval=0.2, what="the unrenewed session to expire")
    finally:
        searcher.close()
        peer.close()


def test_peer_tickets_prove_identity_to_the_named_peer_only(client_factory):
    server_peer, other_peer, caller = client_factory(), client_factory(), client_factory()
    server_peer.login("server", address="127.0.0.1:7001")
    other_peer.login("other", address="127.0.0.1:7002")
    caller.login("caller")
    ticket = caller.stub.IssuePeerTicket(tpb.IssuePeerTicketRequest(audience="server"), metadata=caller.md, timeout=5).ticket

    def verify(client, text):
        return client.stub.VerifyPeerTicket(tpb.VerifyPeerTicketRequest(ticket=text), metadata=client.md, timeout=5)

    verified = verify(server_peer, ticket)
    assert verified.valid and verified.peer_name == "caller" and verified.ttl_seconds > 0
    wrong_audience = verify(other_peer, ticket)
    assert not wrong_audience.valid and "not 'other'" in wrong_audience.reason
    forged = verify(server_peer, ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB"))
    assert not forged.valid and "not signed" in forged.reason
    assert not verify(server_peer, "garbage").valid
    caller.stub.Logout(tpb.LogoutRequest(), metadata=caller.md, timeout=5)
    after_logout = verify(server_peer, ticket)
    assert not after_logout.valid and "no longer live" in after_logout.reason


def test_a_replaced_index_keeps_the_session_its_lease_and_its_tickets(client_factory, monkeypatch):
    """A replacement is stored under a row of its own and handed the session at the end (see
    SqliteStore.replace_index): the token, lease, tickets issued before and logout all carry on."""
    monkeypatch.setattr(sqlite_store, "STAGE_SLICE", 2)
    peer, searcher = client_factory(), client_factory()
    peer.login("peer", address="127.0.0.1:7001")
    searcher.login("searcher", address="127.0.0.1:7002")
    peer.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("old.txt", b"old")]))
    ticket = peer.stub.IssuePeerTicket(tpb.IssuePeerTicketRequest(audience="searcher"), metadata=peer.md, timeout=5).ticket

    new = [file_entry(f"new{i}.txt", b"%d" % i) for i in range(5)]
    assert peer.send_index(tpb.SendIndexRequest(mode=REPLACE, add=new[:3]), tpb.SendIndexRequest(add=new[3:])).file_count == 5

    assert sorted(f.name for f in searcher.query("").files) == [f"new{i}.txt" for i in range(5)]
    verified = searcher.stub.VerifyPeerTicket(tpb.VerifyPeerTicketRequest(ticket=ticket), metadata=searcher.md, timeout=5)
    assert verified.valid and verified.peer_name == "peer"
    assert peer.stub.Heartbeat(tpb.HeartbeatRequest(), metadata=peer.md, timeout=5).lease_seconds == 60
    peer.stub.Logout(tpb.LogoutRequest(), metadata=peer.md, timeout=5)
    assert searcher.query("").files == []


def test_health_reports_each_service_serving_then_not_serving(tracker):
    channel = grpc.insecure_channel(f"127.0.0.1:{tracker.port}")
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        for service in ("", "p2p.v1.TrackerService"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        tracker.server.set_serving(False)
        reply = stub.Check(health_pb2.HealthCheckRequest(service="p2p.v1.TrackerService"), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        channel.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.2", "[::1]"])
def test_the_container_probe_finds_the_server_at_the_host_it_listens_on(start_tracker_at, host):
    """The HEALTHCHECK reads $P2P_LISTEN: a server bound to one address alone (127.0.0.2 here, a
    container's own address in a deployment) was probed at 127.0.0.1 and reported unhealthy."""
    if host == "[::1]" and not ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    listen = f"{host}:0" if host != "0.0.0.0" else "127.0.0.1:0"  # the wildcard's probe, without listening on every interface
    tracker = start_tracker_at(listen=listen)
    env = {**os.environ, "P2P_LISTEN": f"{host}:{tracker.port}"}
    probe = [sys.executable, "-m", "p2p_common.healthcheck", "--service", "p2p.v1.TrackerService"]
    out = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=30)
    dialled = "127.0.0.1" if host == "0.0.0.0" else host
    assert out.returncode == 0 and out.stdout == f"{dialled}:{tracker.port} p2p.v1.TrackerService: SERVING\n", out


def test_second_tracker_on_the_same_port_fails_to_bind(tracker, start_tracker_at, tmp_path):
    from p2p_common.server import BindError

    with pytest.raises(BindError):
        start_tracker_at(listen=f"127.0.0.1:{tracker.port}", db=str(tmp_path / "other.db"))


def test_bearer_metadata_format():
    assert bearer_metadata("abc") == (("authorization", "Bearer abc"),)


def test_name_index_stays_consistent_through_replace_update_logout_and_expiry(start_tracker_at, tmp_path):
    from tests.helpers import TrackerClientForTests

    tracker = start_tracker_at(lease_seconds=2)
    c = TrackerClientForTests(f"127.0.0.1:{tracker.port}")
    other = TrackerClientForTests(f"127.0.0.1:{tracker.port}")
    try:
        c.login("alice", address="127.0.0.1:7001")
        c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry(f"old-{i}.txt", str(i).encode()) for i in range(50)]))
        c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry(f"new-{i}.txt", str(i).encode()) for i in range(50)]))
        c.send_index(tpb.SendIndexRequest(mode=UPDATE, add=[file_entry("new-1.txt", b"changed")], remove=["new-2.txt"]))
        store = tracker.directory.store

        def check_results() -> None:
            assert c.query("old-").files == [] and len(c.query("new-").files) == 49
            assert [f.name for f in c.query("ew-1.t").files] == ["new-1.txt"] and c.query("ew-2.t").files == []
            assert [f.sha256 for f in c.query("new-1.*").files] == [sha256_hex(b"changed")] and not c.query("*/new-1.*").files

        check_results()  # served before the written-behind index caught up
        while store.maintain(1.0):
            pass
        check_results()  # and through the index
        other.login("bob", address="127.0.0.1:7002")
        other.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("bob-file.txt")]))
        c.stub.Logout(tpb.LogoutRequest(), metadata=c.md, timeout=5)
        wait_for(
            lambda: tracker.directory.expire() >= 0 and not tracker.directory.peers()[0], timeout=6, interval=0.2, what="expiry"
        )
        tracker.directory.expire()
        while store.maintain(1.0, prune_now=True):  # what the reaper does in the background, now
            pass
        db = sqlite3.connect(tmp_path / "tracker.db")
        assert db.execute("SELECT count(*) FROM files").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM file_words").fetchone()[0] == 0  # stale postings pruned
        assert db.execute("SELECT count(*) FROM words WHERE word = 'new'").fetchone()[0] == 1
    finally:
        c.close()
        other.close()


def test_one_log_line_per_rpc_without_secrets(client_factory, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="p2p.rpc")
    c = client_factory()
    reply = c.login("logged", "hunter22-secret")
    c.query("anything")
    code_of(c.stub.Query, tpb.QueryRequest(), metadata=(("authorization", "Bearer forged-token-value"),), timeout=5)

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "p2p.rpc"]

    wait_for(lambda: len(lines()) >= 3, timeout=5, what="three log lines")
    text = "\n".join(lines())
    assert "rpc /p2p.v1.TrackerService/Login" in text and "status=OK" in text and "duration_ms=" in text
    assert "caller=logged@ipv4:127.0.0.1" in text  # the authenticated account, with its address
    assert "status=UNAUTHENTICATED" in text
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert (
        "hunter22-secret" not in everything and reply.session_token not in everything and "forged-token-value" not in everything
    )


def test_common_words_are_searched_in_content_order_with_the_same_results(client_factory, monkeypatch):
    """Above BROAD_CANDIDATES postings a query walks contents in sha256 order instead of the index."""
    from tracker import sqlite_store

    c = client_factory()
    c.login("alice", address="127.0.0.1:7001")
    songs = [file_entry(f"album/{i:02d} - song {i}.mp3", str(i).encode()) for i in range(30)]
    c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[*songs, file_entry("notes/readme.txt")]))
    patterns = ["mp3", "song 1", "*/0?*.MP3", "readme", "zzz", "3 - s", "*.*"]
    through_index = {p: [f.name for f in c.query(p).files] for p in patterns}
    monkeypatch.setattr(sqlite_store, "BROAD_CANDIDATES", 0)  # every word counts as common now
    walked = {p: [f.name for f in c.query(p).files] for p in patterns}
    assert walked == through_index
    assert len(walked["mp3"]) == 30 and walked["readme"] == ["notes/readme.txt"] and walked["zzz"] == []
    assert sorted(walked["song 1"]) == ["album/01 - song 1.mp3", *(f"album/{i} - song {i}.mp3" for i in range(10, 20))]
    pages, token = [], ""
    while True:  # the walk pages like the index does
        reply = c.query("mp3", page_size=7, page_token=token)
        pages.append([f.sha256 for f in reply.files])
        token = reply.next_page_token
        if not token:
            break
    assert [len(p) for p in pages] == [7, 7, 7, 7, 2]
    assert [sha for page in pages for sha in page] == sorted(f.sha256 for f in songs)


def test_a_query_over_its_time_budget_is_refused_as_too_broad(client_factory, monkeypatch):
    from tracker import sqlite_store

    c = client_factory()
    c.login("alice", address="127.0.0.1:7001")
    c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry(f"song {i}.mp3", str(i).encode()) for i in range(20)]))
    monkeypatch.setattr(sqlite_store, "QUERY_SECONDS", 0.0)
    monkeypatch.setattr(sqlite_store, "CLOCK_CHECK_STEPS", 1)
    code, details = code_of(c.stub.Query, tpb.QueryRequest(name_pattern="song"), metadata=c.md, timeout=5)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "'song'" in details and "narrow it down" in details
    monkeypatch.setattr(sqlite_store, "QUERY_SECONDS", 2.0)
    assert len(c.query("song").files) == 20  # the connection is usable again afterwards


def test_a_query_starved_of_processor_is_refused_as_busy_and_asked_again(client_factory, tracker, monkeypatch):
    """Out of time with little processor used (the tracker busy storing a large index), a query is
    no fault of its pattern's: Busy with a retry-after trailer, which the peer's client asks again."""
    from peer.tracker_client import TrackerClient
    from tracker import sqlite_store

    c = client_factory()
    c.login("alice", address="127.0.0.1:7001")
    c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry(f"song {i}.mp3", str(i).encode()) for i in range(20)]))
    monkeypatch.setattr(sqlite_store, "QUERY_SECONDS", 1e-9)
    monkeypatch.setattr(sqlite_store, "CLOCK_CHECK_STEPS", 1)
    monkeypatch.setattr(sqlite_store, "thread_cpu", lambda: 0.0)  # as if other threads had the processor
    with pytest.raises(grpc.RpcError) as refused:
        c.stub.Query(tpb.QueryRequest(name_pattern="song"), metadata=c.md, timeout=5)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "tracker is busy" in refused.value.details() and "narrow" not in refused.value.details()
    assert ("retry-after-ms", "1000") in refused.value.trailing_metadata()

    client = TrackerClient(f"127.0.0.1:{tracker.port}", "bob", "pw")
    try:
        client.login()
        threading.Timer(1.5, setattr, (sqlite_store, "QUERY_SECONDS", 2.0)).start()  # the load passes
        started = time.monotonic()
        assert len(client.query("song")) == 20
        assert time.monotonic() - started >= 1.0  # refused, then answered
    finally:
        client.close()


def test_a_source_whose_size_or_chunk_list_disagrees_with_the_majority_is_left_out(client_factory):
    """Sources of one content must agree on its size and chunks; a liar (or a stale index) is outvoted."""
    honest = file_entry("song.mp3", b"the same bytes")
    liar = tpb.FileEntry()
    liar.CopyFrom(honest)
    liar.chunk_list_sha256 = sha256_hex(b"some other chunk list")
    wrong_size = tpb.FileEntry()
    wrong_size.CopyFrom(honest)
    wrong_size.size += 1  # and listed first: its account name sorts before the others
    for name, entry in (("a", honest), ("b", honest), ("c", liar), ("0", wrong_size)):
        peer = client_factory()
        peer.login(name, address=f"127.0.0.1:{7000 + ord(name)}")
        peer.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[entry]))
    looker = client_factory()
    looker.login("looker")
    (match,) = looker.query("song").files
    assert (match.size, match.chunk_list_sha256) == (honest.size, honest.chunk_list_sha256)
    assert sorted(s.peer_name for s in match.sources) == ["a", "b"]


def test_a_published_index_is_indexed_at_once_not_at_the_reapers_next_round(start_tracker_at, tmp_path):
    """The reaper's round is 10 s at a 60 s lease; a publish wakes it, and until its names are
    indexed every query scans them too."""
    from tests.helpers import TrackerClientForTests

    tracker = start_tracker_at(lease_seconds=60)
    c = TrackerClientForTests(f"127.0.0.1:{tracker.port}")
    db = sqlite3.connect(tmp_path / "tracker.db")
    try:
        c.login("alice", address="127.0.0.1:7001")
        tracks = [file_entry(f"album/track {i}.flac", i.to_bytes(2, "big")) for i in range(300)]
        c.send_index(tpb.SendIndexRequest(mode=REPLACE, add=tracks))

        def indexed() -> bool:
            (upto,) = db.execute("SELECT upto FROM index_progress WHERE name = 'files'").fetchone()
            (top,) = db.execute("SELECT max(id) FROM files").fetchone()
            return bool(upto == top)

        wait_for(indexed, timeout=5, what="the new names to be indexed")
        assert sorted(f.name for f in c.query("track 5").files) == sorted(f"album/track {i}.flac" for i in [5, *range(50, 60)])
    finally:
        c.close()
        db.close()


def test_leases_are_kept_true_when_the_system_clock_is_set_back_or_forward(start_tracker_at, monkeypatch):
    """NTP stepping the clock, or an operator's `date -s`: an hour forward must not end every
    session at once, an hour back must not keep a dead peer listed for an hour."""
    from types import SimpleNamespace

    from tracker import steady_clock

    shift = 0.0  # how far the system's wall clock was set, as the tracker's clock module sees it
    monkeypatch.setattr(steady_clock, "time", SimpleNamespace(time=lambda: time.time() + shift, monotonic=time.monotonic))
    tracker = start_tracker_at(lease_seconds=2)
    addr = f"127.0.0.1:{tracker.port}"
    dead, searcher = TrackerClientForTests(addr), TrackerClientForTests(addr)
    try:
        dead.login("dead", address="127.0.0.1:7001")
        dead.send_index(tpb.SendIndexRequest(mode=REPLACE, add=[file_entry("left.iso", b"left")]))
        searcher.login("bob")
        shift = 3600.0
        searcher.stub.Heartbeat(tpb.HeartbeatRequest(), metadata=searcher.md, timeout=5)  # still live
        assert [f.name for f in searcher.query("left").files] == ["left.iso"]
        shift = -3600.0

        def gone() -> bool:
            searcher.stub.Heartbeat(tpb.HeartbeatRequest(), metadata=searcher.md, timeout=5)
            return not searcher.query("left").files

        wait_for(gone, timeout=10, interval=0.2, what="the dead peer's lease to run out")
    finally:
        dead.close()
        searcher.close()
