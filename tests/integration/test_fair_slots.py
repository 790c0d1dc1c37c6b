"""A seed's transfer slots are shared among the users asking for them (peer.transfer_slots):
real tracker, real serving peer with few slots and a serve rate, real downloads."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import closing

import pytest

from p2p_common.errors import Busy
from peer import transfer_slots
from peer.peer_client import PeerChannels
from peer.throttle import Throttle
from peer.tracker_client import TrackerClient
from peer.transfers import connect, fetch, fetch_many, places_of, push, resolve, upload_stream

MiB = 1 << 20


def data_of(size: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture
def bob(tracker) -> Iterator[TrackerClient]:
    """A second user, beside `client`'s."""
    c = TrackerClient(f"127.0.0.1:{tracker.port}", "bob", "pw")
    c.login()
    yield c
    c.close()


def finished_at(run, results: dict[str, float], key: str) -> threading.Thread:
    def go() -> None:
        run()
        results[key] = time.monotonic()

    thread = threading.Thread(target=go)
    thread.start()
    return thread


def watch_waiting(client: TrackerClient, peer: str, done: dict[str, float]) -> list[int]:
    """The seed's transfers_waiting, as its GetStatus says it every 50 ms until bob is done."""
    seen = [0]

    def poll() -> None:
        with closing(PeerChannels(None)) as channels:
            conn = connect(client, peer, places_of(client, peer)[0], channels)
            while "bob" not in done:
                seen.append(conn.status().transfers_waiting)
                time.sleep(0.05)

    threading.Thread(target=poll, daemon=True).start()
    return seen


def test_a_batch_that_holds_a_seeds_slots_lets_another_user_in_at_the_next_free_one(start_peer_at, client, bob, tmp_path):
    """A `get --all` starts its next file the moment one ends: it took every slot that came free,
    and another user's `get` of one file waited for the whole batch."""
    lecture = {f"lecture/{i:02d}.bin": data_of(2 * MiB, seed=i) for i in range(12)}
    notes = data_of(2 * MiB, seed=99)
    start_peer_at("seed", {**lecture, "notes.bin": notes}, max_transfers=2, max_serve_rate=6 * MiB)
    targets = [(resolve(client, name), tmp_path / "alice" / name) for name in lecture]
    done: dict[str, float] = {}
    batch = finished_at(lambda: [f.error for f in fetch_many(client, targets, jobs=2)], done, "batch")  # ~4 s at the rate
    time.sleep(0.3)  # the batch holds both slots by now
    asked = time.monotonic()
    waiting_seen = watch_waiting(client, "seed", done)
    result = fetch(bob, resolve(bob, "notes.bin"), tmp_path / "bob" / "notes.bin")
    done["bob"] = time.monotonic()
    batch.join(60)
    assert 1 <= max(waiting_seen) <= 2  # its status told of bob waiting for a slot (and of alice, refused for him)
    assert (tmp_path / "bob" / "notes.bin").read_bytes() == notes and result.dropped == {}
    assert all((tmp_path / "alice" / name).read_bytes() == data for name, data in lecture.items())
    waited, batch_took = done["bob"] - asked, done["batch"] - asked
    assert waited < batch_took - 1.0, f"bob done {waited:.1f} s after asking, the batch {batch_took:.1f} s"


def test_a_user_holding_every_slot_hands_one_over_after_its_turn(start_peer_at, client, bob, tmp_path, monkeypatch):
    """Two long downloads of one user held a seed's two slots for their whole length; now one
    ends its turn for a user waiting with none, and finishes afterwards from where it stopped."""
    monkeypatch.setattr(transfer_slots, "TURN_SECONDS", 0.5)
    films = {f"film{i}.bin": data_of(16 * MiB, seed=i) for i in range(2)}
    notes = data_of(MiB, seed=99)
    start_peer_at("seed", {**films, "notes.bin": notes}, max_transfers=2, max_serve_rate=6 * MiB)
    done: dict[str, float] = {}
    threads = [
        finished_at(lambda n=name: fetch(client, resolve(client, n), tmp_path / "alice" / n), done, name)  # ~5.5 s
        for name in films
    ]
    time.sleep(0.3)
    asked = time.monotonic()
    result = fetch(bob, resolve(bob, "notes.bin"), tmp_path / "bob" / "notes.bin")
    done["bob"] = time.monotonic()
    for thread in threads:
        thread.join(60)
    assert (tmp_path / "bob" / "notes.bin").read_bytes() == notes and result.dropped == {}
    assert all((tmp_path / "alice" / name).read_bytes() == data for name, data in films.items())
    films_done = max(done[name] for name in films)  # the one that kept its slot ends sooner, with the whole rate
    waited, films_took = done["bob"] - asked, films_done - asked
    assert waited < films_took - 1.0, f"bob done {waited:.1f} s after asking, the films {films_took:.1f} s"


def test_a_user_sending_file_after_file_into_every_slot_hands_one_over_between_files(
    start_peer_at, client, bob, tmp_path, monkeypatch
):
    """Students handing in work at a deadline: one sending a folder on every slot of the inbox
    (a stream carries file after file) kept the others out until it was done; now one of its
    streams ends at its next offer after its turn, and its `put` sends the rest once let in."""
    monkeypatch.setattr(transfer_slots, "TURN_SECONDS", 0.5)
    inbox = start_peer_at("inbox", {}, allow_uploads=True, max_transfers=2)
    folder = tmp_path / "alice"
    folder.mkdir()
    work = {f"part{i:02d}.bin": data_of(MiB, seed=i) for i in range(30)}
    for name, data in work.items():
        (folder / name).write_bytes(data)
    cap = Throttle(4 * MiB)  # alice's uplink: her 30 MiB take ~7.5 s
    address = places_of(client, "inbox")[0]

    def send(names: list[str]) -> None:
        with closing(PeerChannels(None)) as channels:
            stream = upload_stream(client, "inbox", address, channels, 60)
            try:
                for name in names:
                    push(client, folder / name, "inbox", address=address, channels=channels, throttle=cap, stream=stream)
            finally:
                stream.close()

    names = sorted(work)
    done: dict[str, float] = {}
    threads = [finished_at(lambda half=half: send(half), done, f"alice{i}") for i, half in enumerate((names[::2], names[1::2]))]
    time.sleep(0.3)  # alice's two streams hold the inbox's two slots
    asked = time.monotonic()
    (tmp_path / "essay.txt").write_bytes(b"bob's essay")
    push(bob, tmp_path / "essay.txt", "inbox")
    done["bob"] = time.monotonic()
    for thread in threads:
        thread.join(60)
    assert (inbox.share.root / "essay.txt").read_bytes() == b"bob's essay"
    assert all((inbox.share.root / name).read_bytes() == data for name, data in work.items())
    first = min(done["alice0"], done["alice1"])
    waited, alice_took = done["bob"] - asked, first - asked
    assert waited < alice_took - 1.0, f"bob done {waited:.1f} s after asking, alice {alice_took:.1f} s"


def test_users_holding_as_many_take_turns_and_a_refusal_says_when_to_ask_again(start_peer_at, client, bob, tmp_path, monkeypatch):
    """The 17th user of a seed of 16 slots waited for someone's whole download (nearly an hour, for a
    4 GiB image at 20 MiB/s shared 16 ways; its `get` gave up after 10 minutes): now a user
    holding one slot hands it over to one waiting with none after a turn (10 s; 0.5 s here)."""
    film, notes = data_of(16 * MiB, seed=1), data_of(MiB, seed=99)
    start_peer_at("seed", {"film.bin": film, "notes.bin": notes}, max_transfers=1, max_serve_rate=4 * MiB)
    done: dict[str, float] = {}
    alice = finished_at(lambda: fetch(client, resolve(client, "film.bin"), tmp_path / "alice" / "film.bin"), done, "film")  # ~4 s
    time.sleep(0.3)  # alice's download holds the one slot
    with closing(PeerChannels(None)) as channels:
        stream = connect(bob, "seed", places_of(bob, "seed")[0], channels).chunk_stream(resolve(bob, "notes.bin").sha256)
        stream.ask([0])
        with pytest.raises(Busy) as refusal:
            stream.next_chunk()
        stream.close()
    # alice's turn ends in 10 s: bob is told to ask again in 2, as any transfer may end sooner
    assert refusal.value.retry_after == transfer_slots.LATEST_ASK_SECONDS
    assert refusal.value.place == 1 and "1st in line" in str(refusal.value)  # the first of those waiting
    monkeypatch.setattr(transfer_slots, "EVEN_TURN_SECONDS", 0.5)
    asked = time.monotonic()
    result = fetch(bob, resolve(bob, "notes.bin"), tmp_path / "bob" / "notes.bin")
    done["bob"] = time.monotonic()
    alice.join(60)
    assert (tmp_path / "bob" / "notes.bin").read_bytes() == notes and result.dropped == {}
    assert (tmp_path / "alice" / "film.bin").read_bytes() == film
    waited, film_took = done["bob"] - asked, done["film"] - asked
    assert waited < film_took - 1.0, f"bob done {waited:.1f} s after asking, alice's film {film_took:.1f} s"
