"""PeerService at the wire: auth with tickets, bad and hostile requests, tracker restarts."""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import re
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from p2p.v1 import peer_pb2 as pb
from p2p.v1 import peer_pb2_grpc
from p2p_common.auth import bearer_metadata
from p2p_common.errors import FailedPrecondition, Unavailable
from peer.node import MAX_BACKOFF, PeerNode
from tests.helpers import wait_for
from tracker.auth import Ticket, TicketSigner, token_hash

MiB = 1 << 20


@pytest.fixture
def served(start_peer_at, peer_stub):
    node = start_peer_at("server", {"hello.txt": b"hello world"}, allow_uploads=True)
    stub, md = peer_stub(node, "server")
    return node, stub, md


def fail(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        result = call(*args, **kwargs)
        if hasattr(result, "__iter__") and not isinstance(result, (bytes, str)):
            list(result)
    return info.value.code(), info.value.details()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_manifest_and_download_with_a_ticket(served):
    _node, stub, md = served
    m = stub.GetManifest(pb.GetManifestRequest(sha256=sha(b"hello world")), metadata=md, timeout=5)
    assert m.size == 11 and len(m.chunk_digests) == 1 and m.chunk_digests[0] == hashlib.sha256(b"hello world").digest()
    chunks = list(
        stub.Download(iter([pb.DownloadRequest(sha256=sha(b"hello world"), chunk_indexes=[0, 0])]), metadata=md, timeout=5)
    )
    assert [(c.index, c.data) for c in chunks] == [(0, b"hello world"), (0, b"hello world")]


def test_status_counts_what_was_shared_served_and_received(served):
    _node, stub, md = served
    before = stub.GetStatus(pb.GetStatusRequest(), metadata=md, timeout=5)
    assert (before.files, before.bytes, before.indexed, before.uploads_allowed) == (1, 11, True, True)
    assert (before.transfers_active, before.transfers_max, before.chunks_served, before.uploads_received) == (0, 8, 0, 0)
    list(stub.Download(iter([pb.DownloadRequest(sha256=sha(b"hello world"), chunk_indexes=[0, 0])]), metadata=md, timeout=5))
    data = b"uploaded"
    offer = pb.UploadOffer(
        name="up.txt", size=len(data), sha256=sha(data), chunk_size=MiB, chunk_digests=[hashlib.sha256(data).digest()]
    )
    upload = [pb.UploadRequest(offer=offer), pb.UploadRequest(chunk=pb.UploadChunk(index=0, data=data))]
    assert list(stub.Upload(iter(upload), metadata=md, timeout=5))[-1].complete.sha256 == sha(data)
    after = stub.GetStatus(pb.GetStatusRequest(), metadata=md, timeout=5)
    assert (after.files, after.bytes, after.chunks_served, after.bytes_served, after.uploads_received) == (2, 19, 2, 22, 1)
    assert after.transfers_active == 0 and after.max_serve_rate == 0
    code, _ = fail(stub.GetStatus, pb.GetStatusRequest(), timeout=5)  # like every PeerService call: a ticket
    assert code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [((), "missing"), ((("authorization", "Bearer junk"),), "not signed"), ((("authorization", "Token x"),), "Bearer")],
)
def test_calls_without_a_valid_ticket_are_unauthenticated(served, metadata, fragment):
    _node, stub, _md = served
    code, msg = fail(stub.GetManifest, pb.GetManifestRequest(sha256=sha(b"hello world")), metadata=metadata, timeout=5)
    assert code == grpc.StatusCode.UNAUTHENTICATED and fragment in msg
    code, _ = fail(
        stub.Download, iter([pb.DownloadRequest(sha256=sha(b"hello world"), chunk_indexes=[0])]), metadata=metadata, timeout=5
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_expired_and_misaddressed_tickets_are_refused(served, tracker, client):
    _node, stub, _md = served
    signer = TicketSigner(tracker.directory.store.secret("ticket-hmac", 32))
    session = tracker.directory.store.session_by_token(token_hash(client._token), time.time())
    expired = signer.sign(Ticket(session.token_hash, "server", time.time() - 5))
    code, msg = fail(
        stub.GetManifest, pb.GetManifestRequest(sha256=sha(b"hello world")), metadata=bearer_metadata(expired), timeout=5
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED and "expired" in msg
    other = bearer_metadata(client.ticket("someone-else"))
    code, msg = fail(stub.GetManifest, pb.GetManifestRequest(sha256=sha(b"hello world")), metadata=other, timeout=5)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "not 'server'" in msg


def test_unknown_content_bad_digest_and_out_of_range_chunks(served):
    _node, stub, md = served
    code, _ = fail(stub.GetManifest, pb.GetManifestRequest(sha256="0" * 64), metadata=md, timeout=5)
    assert code == grpc.StatusCode.NOT_FOUND
    code, msg = fail(stub.GetManifest, pb.GetManifestRequest(sha256="../../etc/passwd"), metadata=md, timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "sha256" in msg
    code, msg = fail(
        stub.Download, iter([pb.DownloadRequest(sha256=sha(b"hello world"), chunk_indexes=[5])]), metadata=md, timeout=5
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "out of range" in msg


def offer(name: str, data: bytes) -> pb.UploadRequest:
    return pb.UploadRequest(
        offer=pb.UploadOffer(
            name=name, size=len(data), sha256=sha(data), chunk_size=MiB, chunk_digests=[hashlib.sha256(data).digest()]
        )
    )


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/cron.d/evil", "a/../../evil", "nul\x00.txt", ""])
def test_upload_names_cannot_escape_the_share(served, name):
    node, stub, md = served
    data = b"payload"
    requests = [offer(name, data), pb.UploadRequest(chunk=pb.UploadChunk(index=0, data=data))]
    code, msg = fail(stub.Upload, iter(requests), metadata=md, timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "name" in msg
    assert not (node.share.root.parent / "evil.txt").exists()


@pytest.mark.parametrize("name", [".p2p/hashes.db-journal", ".p2p/new.bin", "film.mkv.p2p-part", ".f.0123456789abcdef.p2p-have"])
def test_uploads_cannot_write_the_peers_own_files(served, name):
    """Its hash cache (a planted SQLite journal would be rolled into it) and staged transfers."""
    node, stub, md = served
    state = sorted(p.name for p in (node.share.root / ".p2p").iterdir())
    data = b"payload"
    requests = [offer(name, data), pb.UploadRequest(chunk=pb.UploadChunk(index=0, data=data))]
    code, msg = fail(stub.Upload, iter(requests), metadata=md, timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "kept for a peer's own files" in msg, (code, msg)
    assert not (node.share.root / name).exists() and sorted(p.name for p in (node.share.root / ".p2p").iterdir()) == state


def test_malformed_uploads(served):
    node, stub, md = served
    data = b"payload"
    cases = [
        ([pb.UploadRequest(chunk=pb.UploadChunk(index=0, data=data))], grpc.StatusCode.INVALID_ARGUMENT, "offer"),
        ([offer("x.txt", data), offer("x.txt", data)], grpc.StatusCode.INVALID_ARGUMENT, "chunk"),
        (
            [offer("x.txt", data), pb.UploadRequest(chunk=pb.UploadChunk(index=0, data=b"tampered"))],
            grpc.StatusCode.DATA_LOSS,
            "digest",
        ),
        (
            [offer("x.txt", data), pb.UploadRequest(chunk=pb.UploadChunk(index=9, data=data))],
            grpc.StatusCode.INVALID_ARGUMENT,
            "range",
        ),
        ([offer("hello.txt", data)], grpc.StatusCode.ALREADY_EXISTS, "different content, which an upload never replaces"),
    ]
    too_long = "d/" + "n" * 300  # within the 1024 bytes of a name, past the 255 of a file system's name
    cases.append(([offer(too_long, data)], grpc.StatusCode.INVALID_ARGUMENT, "longer than this peer's file system allows"))
    bad_manifest = offer("y.txt", data)
    bad_manifest.offer.chunk_size = 1000
    cases.append(([bad_manifest], grpc.StatusCode.INVALID_ARGUMENT, "chunk_size"))
    for requests, code_expected, fragment in cases:
        code, msg = fail(stub.Upload, iter(requests), metadata=md, timeout=5)
        assert code == code_expected and fragment in msg, (code, msg)
    assert not (node.share.root / "x.txt").exists()


def test_a_second_upload_of_other_content_to_a_name_is_refused_at_its_offer(served):
    """Two senders, one name, different bytes: the second used to send its whole file and only
    then hear that the name was taken. A sender that goes away frees the name."""
    node, stub, md = served
    first, second = b"first sender's bytes", b"second sender's bytes"
    sends: queue.SimpleQueue[pb.UploadRequest | None] = queue.SimpleQueue()
    sends.put(offer("clash.txt", first))
    under_way = stub.Upload(iter(sends.get, None), metadata=md, timeout=30)
    assert next(under_way).HasField("accepted")  # the offer is taken, and the stream stays open
    code, msg = fail(stub.Upload, iter([offer("clash.txt", second)]), metadata=md, timeout=5)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "another upload to clash.txt, of other content" in msg, msg
    sends.put(pb.UploadRequest(chunk=pb.UploadChunk(index=0, data=first)))
    sends.put(None)
    assert next(under_way).complete.sha256 == sha(first)
    assert (node.share.root / "clash.txt").read_bytes() == first

    abandoned: queue.SimpleQueue[pb.UploadRequest | None] = queue.SimpleQueue()
    abandoned.put(offer("later.txt", first))
    stream = stub.Upload(iter(abandoned.get, None), metadata=md, timeout=30)
    assert next(stream).HasField("accepted")
    stream.cancel()  # the sender goes away: its name is free again
    abandoned.put(None)
    chunk = pb.UploadRequest(chunk=pb.UploadChunk(index=0, data=second))

    def second_sender_lands() -> bool:
        try:
            return list(stub.Upload(iter([offer("later.txt", second), chunk]), metadata=md, timeout=5))[-1].HasField("complete")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc  # until the server sees the cancel
            return False

    wait_for(second_sender_lands, timeout=10, what="the name freed by the cancelled upload")
    assert (node.share.root / "later.txt").read_bytes() == second


def test_an_upload_never_replaces_what_the_share_holds_but_does_not_share(served, tmp_path):
    """A link, a pipe, or a file not indexed yet (being written, or newer than the last rescan) at
    the name: the owner's, not the sender's to replace."""
    node, stub, md = served
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"the owner's notes")
    root = node.share.root
    (root / "link.txt").symlink_to(outside)
    os.mkfifo(root / "pipe")
    (root / "fresh.txt").write_bytes(b"being written")
    later = time.time() + 3600  # modified "just now" for the whole test: never settled, never indexed
    os.utime(root / "fresh.txt", (later, later))
    data = b"payload"
    for name in ("link.txt", "pipe", "fresh.txt"):
        requests = [offer(name, data), pb.UploadRequest(chunk=pb.UploadChunk(index=0, data=data))]
        code, msg = fail(stub.Upload, iter(requests), metadata=md, timeout=5)
        assert code == grpc.StatusCode.ALREADY_EXISTS and name in msg and "not shared" in msg, (name, code, msg)
    (root / "cache").symlink_to(root / ".p2p")  # inside the share, but links are not followed
    for name in ("cache/hashes.db-journal", "cache/x"):
        requests = [offer(name, data), pb.UploadRequest(chunk=pb.UploadChunk(index=0, data=data))]
        code, msg = fail(stub.Upload, iter(requests), metadata=md, timeout=5)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "cache is a symbolic link" in msg, (name, code, msg)
    assert not (root / ".p2p" / "x").exists() and not (root / ".p2p" / "hashes.db-journal").exists()
    assert (root / "link.txt").is_symlink() and outside.read_bytes() == b"the owner's notes"
    assert stat.S_ISFIFO(os.lstat(root / "pipe").st_mode)
    assert (root / "fresh.txt").read_bytes() == b"being written"


def test_oversized_messages_are_refused(served):
    _node, stub, md = served
    huge = pb.UploadRequest(chunk=pb.UploadChunk(index=0, data=b"x" * (9 * MiB)))
    code, _ = fail(stub.Upload, iter([offer("big.bin", b"x"), huge]), metadata=md, timeout=10)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def peer_health(port: int) -> int:
    """The PeerService status a grpc.health.v1 Check reports."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = health_pb2.HealthCheckRequest(service="p2p.v1.PeerService")
        return health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status


def test_peer_health_and_reflection(served):
    node, _stub, _md = served
    assert peer_health(node.port) == health_pb2.HealthCheckResponse.SERVING


def _settled_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.utime(path, (time.time() - 10, time.time() - 10))  # not "still being written"


def _peer_of(port: int, share: Path, make: bool = True) -> PeerNode:
    """A serving peer (not the fixture's: these tests restart its tracker) sharing keep.txt (made
    unless make is False: the share is there already)."""
    from peer.config import PeerConfig
    from peer.node import start_peer

    if make:
        share.mkdir()
        _settled_file(share / "keep.txt", b"still here")
    return start_peer(
        PeerConfig(tracker=f"127.0.0.1:{port}", name="srv", password="pw", share=share, listen="127.0.0.1:0", rescan_seconds=0.2)
    )


def test_one_serve_per_share(tracker, tmp_path):
    first = _peer_of(tracker.port, tmp_path / "share")
    try:
        with pytest.raises(FailedPrecondition, match=rf"already served by another p2p-peer serve \(pid {os.getpid()}\)"):
            _peer_of(tracker.port, tmp_path / "share", make=False)
    finally:
        first.stop()
    _peer_of(tracker.port, tmp_path / "share", make=False).stop()  # free again once the first one stopped


def test_tracker_restart_during_serve_relogs_in_and_republishes(start_tracker_at, tmp_path, caplog):
    from peer.tracker_client import TrackerClient

    first = start_tracker_at(db=":memory:", lease_seconds=5)
    port = first.port
    node = _peer_of(port, tmp_path / "share")
    try:
        assert node.keeper.ready.wait(10)
        published_before = node.keeper.publishes
        first.stop(grace=0)
        second = start_tracker_at(db=":memory:", listen=f"127.0.0.1:{port}", lease_seconds=5)  # forgets every session
        c = TrackerClient(f"127.0.0.1:{second.port}", "tester", "pw")
        c.login()
        wait_for(lambda: c.query("keep.txt"), timeout=20, interval=0.2, what="the peer to log in again and republish")
        assert node.keeper.publishes > published_before
        said = re.compile(rf"the tracker at 127\.0\.0\.1:{port} answers after \d+ failed tr(y|ies); .*, 1 file published")
        wait_for(lambda: [r for r in caplog.records if said.search(r.getMessage())], what="the end of the outage told")
        c.close()
    finally:
        node.stop(grace=0)


def test_a_tracker_away_is_warned_of_once_and_tried_again_at_the_backoff_pace(tmp_path, caplog):
    """Changes to the share meanwhile (each wakes the session keeper) do not make it try at once,
    and the tries after the first are logged at info (a warning every few minutes), not warned."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    caplog.set_level(logging.INFO, logger="peer.node")
    node = _peer_of(port, tmp_path / "share")
    try:
        started = time.monotonic()
        for i in range(30):  # a file added every 0.1 s for 3 s: rescans keep finding changes
            _settled_file(tmp_path / "share" / f"new{i}.txt", b"x")
            time.sleep(0.1)
        elapsed = time.monotonic() - started + 0.2  # the keeper started a moment before
        # the first try at once, then waits of at least half the backoff (0.25, 0.5, 1, 2 s...):
        # 4 in 3 s, where every rescan's changes made one (16 in 3 s)
        most, waited, backoff = 1, 0.0, 0.5
        while waited + backoff / 2 <= elapsed:
            most, waited, backoff = most + 1, waited + backoff / 2, min(MAX_BACKOFF, 2 * backoff)
        assert 1 <= node.keeper.failures <= most, (node.keeper.failures, most, elapsed)
        tries = [r for r in caplog.records if r.name == "peer.node" and "retrying" in r.getMessage()]
        warned = [r for r in tries if r.levelno >= logging.WARNING]
        assert len(warned) == 1 and "serving anyway" in warned[0].getMessage(), [r.getMessage() for r in warned]
        assert any("failed tries so far" in r.getMessage() and r.levelno == logging.INFO for r in tries)
    finally:
        node.stop(grace=0)


def test_a_tracker_restart_longer_than_the_lease_costs_peers_no_login(start_tracker_at, tmp_path):
    """The tracker carries sessions over a restart; the peer keeps its session and its unpublished changes."""
    from peer.tracker_client import TrackerClient

    first = start_tracker_at(lease_seconds=3)
    port = first.port
    node = _peer_of(port, tmp_path / "share")
    try:
        assert node.keeper.ready.wait(10)
        logins = node.tracker.generation
        first.stop(grace=0)
        _settled_file(tmp_path / "share" / "new.txt", b"added while the tracker was down")
        wait_for(lambda: node.keeper.failures >= 2, timeout=20, what="the peer to find the tracker gone")
        db = sqlite3.connect(tmp_path / "tracker.db")
        expiry = db.execute("SELECT max(expires_at) FROM sessions").fetchone()[0]
        db.close()
        wait_for(lambda: time.time() > expiry + 0.5, timeout=10, what="the lease to run out meanwhile")
        second = start_tracker_at(listen=f"127.0.0.1:{port}", lease_seconds=3)
        c = TrackerClient(f"127.0.0.1:{second.port}", "tester", "pw")

        def logged_in() -> bool:  # this process's channels to that address share one reconnect backoff
            try:
                return c.login() is not None
            except Unavailable:
                return False

        wait_for(logged_in, timeout=15, interval=0.2, what="the restarted tracker")
        assert [f.name for f in c.query("keep.txt")] == ["keep.txt"]  # still listed: the session carried on
        wait_for(lambda: c.query("new.txt"), timeout=20, interval=0.2, what="the change made during the outage")
        assert node.tracker.generation == logins  # no new login, so no full republish either
        c.close()
    finally:
        node.stop(grace=0)


def test_a_peer_serves_at_once_and_publishes_its_share_as_it_is_hashed(start_peer_at, client, monkeypatch):
    """Hashing runs in slices beside serving: health is SERVING before the share is indexed."""
    from peer import watcher

    monkeypatch.setattr(watcher, "SCAN_SLICE_SECONDS", 0.0)  # one file a scan: many slices
    files = {f"album/{i:02d}.bin": bytes([i]) * 3000 for i in range(20)}
    node = start_peer_at("slow", files, wait=False)
    assert peer_health(node.port) == health_pb2.HealthCheckResponse.SERVING
    assert node.keeper.ready.wait(15) and node.watcher.indexed.is_set()
    found = {f.name: f.sha256 for f in client.query("album/")}
    assert found == {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def test_a_file_dropped_into_the_share_is_published_without_waiting_for_a_rescan(start_peer_at, client, tmp_path):
    """Folder events, not walks: with rescans an hour apart (as a share of millions of files has
    them), files added, moved in and removed are published within seconds."""
    node = start_peer_at("events", {"old.txt": b"old", "keep/k.txt": b"k"}, rescan_seconds=3600)
    if node.watcher._events is None:
        pytest.skip("no inotify on this system")
    share = tmp_path / "share-events"
    (share / "new.txt").write_bytes(b"dropped in")
    album = tmp_path / "album"
    (album / "disc1").mkdir(parents=True)
    (album / "disc1" / "01.flac").write_bytes(b"track one")
    (album / "cover.jpg").write_bytes(b"cover")
    album.rename(share / "album")  # a folder of files moved in at once
    (share / "old.txt").unlink()
    expected = {"new.txt", "keep/k.txt", "album/disc1/01.flac", "album/cover.jpg"}
    wait_for(lambda: {f.name for f in client.query("", peer="events")} == expected, timeout=15, what="the changes published")
    assert {f.name for f in node.share.files()} == expected


def open_download(node: PeerNode, client, data: bytes):
    """A Download stream of data from node, asked for its first chunk and kept open: ask for more
    with asks.put, end it with asks.put(None). Returns (channel, stub, metadata, asks, stream)."""
    channel = grpc.insecure_channel(f"127.0.0.1:{node.port}")
    stub, md = peer_pb2_grpc.PeerServiceStub(channel), bearer_metadata(client.ticket(node.config.name))
    asks: queue.SimpleQueue[pb.DownloadRequest | None] = queue.SimpleQueue()
    asks.put(pb.DownloadRequest(sha256=sha(data), chunk_indexes=[0]))
    return channel, stub, md, asks, stub.Download(iter(asks.get, None), metadata=md, timeout=30)


def test_transfers_beyond_the_slots_are_refused_until_one_ends(start_peer_at, client):
    data = os.urandom(3 * MiB)
    node = start_peer_at("busy", {"a.bin": data}, max_transfers=1)
    channel, stub, md, asks, holding = open_download(node, client, data)
    try:
        assert next(holding).data == data[:MiB]  # this stream holds the only slot, and stays open
        code, msg = fail(stub.Download, iter([pb.DownloadRequest(sha256=sha(data), chunk_indexes=[1])]), metadata=md, timeout=5)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "already serving 1 transfer;" in msg
        offer = pb.UploadOffer(name="x", size=1, sha256=sha(b"x"), chunk_size=MiB, chunk_digests=[hashlib.sha256(b"x").digest()])
        code, msg = fail(stub.Upload, iter([pb.UploadRequest(offer=offer)]), metadata=md, timeout=5)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "already serving 1 transfer;" in msg
        assert peer_health(node.port) == health_pb2.HealthCheckResponse.SERVING  # threads stay free for health
    finally:
        holding.cancel()
        asks.put(None)

    def second_download() -> bytes:
        try:
            reply = stub.Download(iter([pb.DownloadRequest(sha256=sha(data), chunk_indexes=[2])]), metadata=md, timeout=5)
            return next(reply).data
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # the cancelled stream is still winding down
            return b""

    assert wait_for(second_download, what="the slot of the cancelled stream to come back") == data[2 * MiB :]
    channel.close()


def test_a_file_written_to_while_it_is_served_stops_being_served(start_peer_at, client):
    """Its changed bytes are never sent as the content it was indexed as: the stream ends with
    NOT_FOUND, before the next rescan notices, and a new stream is refused until then."""
    data = os.urandom(3 * MiB)
    node = start_peer_at("editing", {"draft.bin": data}, rescan_seconds=3600)
    channel, stub, md, asks, stream = open_download(node, client, data)
    try:
        assert next(stream).data == data[:MiB]
        with open(node.share.root / "draft.bin", "r+b") as f:  # edited in place: same size and inode
            f.seek(2 * MiB + 10)
            f.write(b"edited")
        asks.put(pb.DownloadRequest(sha256=sha(data), chunk_indexes=[2]))
        with pytest.raises(grpc.RpcError) as info:
            next(stream)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "draft.bin changed while it was being served" in info.value.details()
    finally:
        stream.cancel()
        asks.put(None)
    code, msg = fail(stub.Download, iter([pb.DownloadRequest(sha256=sha(data), chunk_indexes=[1])]), metadata=md, timeout=5)
    assert code == grpc.StatusCode.NOT_FOUND and "draft.bin changed since it was indexed" in msg
    channel.close()


_FREEZING_DOWNLOADER = """
import os, signal, sys
import grpc
from p2p.v1 import peer_pb2 as pb
from p2p.v1 import peer_pb2_grpc
from p2p_common.auth import bearer_metadata

address, ticket, sha256 = sys.argv[1:]
stub = peer_pb2_grpc.PeerServiceStub(grpc.insecure_channel(address))
asks = iter([pb.DownloadRequest(sha256=sha256, chunk_indexes=list(range(16)))])
reply = stub.Download(asks, metadata=bearer_metadata(ticket))
next(reply)
print("holding", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)  # frozen with its connection open: no reset, no reading
"""


def test_a_downloader_that_freezes_loses_its_slot_to_keepalive(start_peer_at, client):
    data = os.urandom(16 * MiB)
    node = start_peer_at("keeper", {"a.bin": data}, max_transfers=1, keepalive_seconds=1.5)
    address = f"127.0.0.1:{node.port}"
    cmd = [sys.executable, "-c", _FREEZING_DOWNLOADER, address, client.ticket("keeper"), sha(data)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2]) as frozen:
        try:
            assert frozen.stdout is not None and frozen.stdout.readline() == "holding\n"
            wait_for(lambda: frozen_state(frozen.pid), timeout=10, what="the downloader to freeze")
            channel = grpc.insecure_channel(address)
            stub, md = peer_pb2_grpc.PeerServiceStub(channel), bearer_metadata(client.ticket("keeper"))

            def download() -> bytes:
                try:
                    reply = stub.Download(iter([pb.DownloadRequest(sha256=sha(data), chunk_indexes=[3])]), metadata=md, timeout=5)
                    return next(reply).data
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # the frozen caller still holds it
                    return b""

            # unanswered pings close the frozen caller's connection (after 1.5 + 0.5 s), and its slot frees
            assert wait_for(download, timeout=30, interval=0.2, what="the slot back") == data[3 * MiB : 4 * MiB]
            channel.close()
        finally:
            frozen.kill()


def frozen_state(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("T")


def test_a_file_being_downloaded_into_the_share_is_served_as_far_as_it_is_verified(start_peer_at, client, tmp_path):
    from peer import chunking
    from peer.chunk_store import PartialFile
    from peer.manifest import Manifest

    node = start_peer_at("midway", {})
    data = os.urandom(4 * 64 * 1024)
    source = tmp_path / "movie.bin"
    source.write_bytes(data)
    manifest = Manifest.from_hashes(chunking.hash_file(source, chunk_size=64 * 1024))
    chunk = lambda i: data[i * 64 * 1024 : (i + 1) * 64 * 1024]  # noqa: E731
    partial = PartialFile(node.share.root / "films" / "movie.bin", manifest)  # as a `get` into the share does
    partial.write_chunk(0, chunk(0))
    partial.write_chunk(2, chunk(2))

    def sources() -> list[tuple[str, bool]]:
        found = client.query(sha256=manifest.sha256)
        return [(s.peer_name, s.partial) for f in found for s in f.sources]

    wait_for(lambda: sources() == [("midway", True)], timeout=15, what="the partial file on the tracker")
    channel = grpc.insecure_channel(f"127.0.0.1:{node.port}")
    stub, md = peer_pb2_grpc.PeerServiceStub(channel), bearer_metadata(client.ticket("midway"))
    try:
        status = stub.GetStatus(pb.GetStatusRequest(), metadata=md, timeout=5)
        assert (status.files, status.partial_files) == (0, 1)
        ask = pb.DownloadRequest(sha256=manifest.sha256, chunk_indexes=[0, 1, 2])
        answers = list(stub.Download(iter([ask]), metadata=md, timeout=5))
        assert [(a.index, a.data, a.not_held) for a in answers] == [(0, chunk(0), False), (1, b"", True), (2, chunk(2), False)]
        assert answers[1].held_chunks == bytes([0b0101])  # chunks 0 and 2
        got = stub.GetManifest(pb.GetManifestRequest(sha256=manifest.sha256), metadata=md, timeout=5)
        assert tuple(got.chunk_digests) == manifest.chunk_digests

        def overwrite_chunk_2(data: bytes) -> None:
            fd = os.open(partial.part_path, os.O_WRONLY)
            os.pwrite(fd, data, 2 * 64 * 1024)
            os.close(fd)

        overwrite_chunk_2(b"\0" * 16)  # recorded as verified, but its bytes went bad
        (bad,) = stub.Download(iter([pb.DownloadRequest(sha256=manifest.sha256, chunk_indexes=[2])]), metadata=md, timeout=5)
        assert (bad.not_held, bad.held_chunks) == (True, bytes([0b0001]))  # neither served nor listed
        overwrite_chunk_2(chunk(2)[:16])
        partial.write_chunk(1, chunk(1))  # the download goes on: asked again, chunk 1 is served

        def chunk_1() -> pb.DownloadResponse | None:
            ask = pb.DownloadRequest(sha256=manifest.sha256, chunk_indexes=[1])
            (answer,) = stub.Download(iter([ask]), metadata=md, timeout=5)
            return None if answer.not_held else answer

        again = wait_for(
            chunk_1, timeout=5, interval=0.05, what="chunk 1 served"
        )  # its record is read on at most 5 times a second
        assert (again.index, again.data) == (1, chunk(1))
        partial.write_chunk(3, chunk(3))
        partial.finish()  # complete: published whole under the same name
        wait_for(lambda: sources() == [("midway", False)], timeout=15, what="the whole file on the tracker")
        assert (node.share.root / "films" / "movie.bin").read_bytes() == data
    finally:
        partial.close()
        channel.close()
