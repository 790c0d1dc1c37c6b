"""Peer tickets expire (5 minutes by default; 2 s here): a download that opens a stream after its
first ticket expired must carry a fresh one."""

from __future__ import annotations

import hashlib
import threading

import pytest

from peer import transfer_slots
from peer.downloader import Progress
from peer.transfers import fetch, resolve

MiB = 1 << 20


@pytest.fixture
def tracker(start_tracker_at):  # the fixture every other one here builds on, with short tickets
    return start_tracker_at(ticket_seconds=2)


def test_a_download_let_in_after_its_ticket_expired_asks_with_a_fresh_one(start_peer_at, client, tmp_path, monkeypatch):
    """A seed busy for longer than a ticket lives (a flash crowd at a lecture's end): the waiting
    download's next ask went with the ticket of its first, expired by then, and was refused
    (UNAUTHENTICATED: the source dropped, the get failed)."""
    monkeypatch.setattr(transfer_slots, "LATEST_ASK_SECONDS", 0.2)  # what the seed tells the refused: ask again then
    content = hashlib.sha256(b"lecture").digest() * (3 * MiB // 32)
    start_peer_at("lecturer", {"lecture.mp4": content}, max_transfers=1, max_serve_rate=MiB)
    remote = resolve(client, "lecture.mp4")
    streaming = threading.Event()

    def started(p: Progress) -> None:
        if p.done_bytes:
            streaming.set()

    first = threading.Thread(target=fetch, args=(client, remote, tmp_path / "a.mp4", started))
    first.start()  # holds the seed's one slot for ~3 s
    assert streaming.wait(10), "the first download never started"
    second = fetch(client, remote, tmp_path / "b.mp4")  # refused, then let in ~3 s later, its first ticket expired
    first.join(30)
    assert (tmp_path / "a.mp4").read_bytes() == content == (tmp_path / "b.mp4").read_bytes()
    assert second.dropped == {} and sum(second.per_source.values()) == 3
