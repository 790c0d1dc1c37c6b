"""A ticket a peer refuses is replaced once and the call made again: a client whose session
lapsed (a laptop asleep past its lease) still holds tickets of that session for minutes, and
the peers it dials ask the tracker, which no longer vouches for them."""

from __future__ import annotations

import hashlib
import time

import pytest

from peer.transfers import fetch, push, resolve

MiB = 1 << 20


@pytest.fixture
def tracker(start_tracker_at):  # the fixture every other one here builds on, with short leases
    return start_tracker_at(lease_seconds=4)


def _lapse(tracker, client, audience: str) -> None:
    """Hold a ticket for audience from client's session, then let that session lapse (client
    renews nothing) while the serving peers keep theirs."""
    client.ticket(audience)
    deadline = time.monotonic() + 20
    while (stats := tracker.directory.store.stats(time.time())).live_sessions > stats.serving_peers:
        assert time.monotonic() < deadline, "the client's session never lapsed"
        time.sleep(0.2)


@pytest.mark.parametrize("size", [1000, 3 * MiB + 1], ids=["one chunk, a stream first", "chunks, a manifest first"])
def test_a_download_after_the_session_lapsed_asks_with_a_fresh_ticket(tracker, start_peer_at, client, tmp_path, size):
    content = hashlib.sha256(b"notes").digest() * (size // 32) + b"x" * (size % 32)
    start_peer_at("seed", {"notes.bin": content})
    remote = resolve(client, "notes.bin")
    _lapse(tracker, client, "seed")
    result = fetch(client, remote, tmp_path / "notes.bin")
    assert (tmp_path / "notes.bin").read_bytes() == content
    assert result.dropped == {}


def test_an_upload_after_the_session_lapsed_asks_with_a_fresh_ticket(tracker, start_peer_at, client, tmp_path):
    inbox = start_peer_at("inbox", allow_uploads=True)
    local = tmp_path / "report.pdf"
    local.write_bytes(hashlib.sha256(b"report").digest() * (2 * MiB // 32))
    _lapse(tracker, client, "inbox")
    result = push(client, local, "inbox", address=f"127.0.0.1:{inbox.port}")
    assert result.sha256 == hashlib.sha256(local.read_bytes()).hexdigest()
    assert (inbox.share.root / "report.pdf").read_bytes() == local.read_bytes()
