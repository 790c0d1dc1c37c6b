"""The download scheduler with in-memory sources: assignment, bad sources, dead sources, resume."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
import time

import pytest

from p2p_common.errors import P2PError, Unavailable
from peer import chunk_store, chunking
from peer.availability import ChunkMap, NotHeld
from peer.chunk_schedule import (
    CROWD_SECONDS,
    HELD_SECONDS,
    PROBE_SECONDS,
    SLOW_MARGIN,
    STALLING_SECONDS,
    STEAL_MARGIN,
    ChunkSchedule,
    crowd_share,
)
from peer.chunk_store import PartialFile, Write, staging_paths
from peer.downloader import WINDOW, Download, Wanted
from peer.manifest import Manifest
from peer.sha256_chain import Sha256Chain
from tests.helpers import wait_for

CHUNK = 64 * 1024


def make(data: bytes) -> tuple[Manifest, Wanted]:
    chain, digests = Sha256Chain(), []
    for offset in range(0, len(data), CHUNK):
        chain.update(data[offset : offset + CHUNK])
        digests.append(chain.digest() if offset + CHUNK >= len(data) else chain.state())
    m = Manifest(hashlib.sha256(data).hexdigest(), len(data), CHUNK, tuple(digests))
    return m, Wanted(m.sha256, m.size, CHUNK, chunking.chunk_list_sha256(digests))


class Gauge:
    """Streams open at once, and the most ever open."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = self.peak = 0

    def change(self, by: int) -> None:
        with self.lock:
            self.open += by
            self.peak = max(self.peak, self.open)


class MemoryStream:
    def __init__(self, source: MemorySource):
        self.source = source
        self.asked: list[int] = []
        self.cond = threading.Condition()
        self.closed = False
        source.opened += 1
        source.gauge.change(+1)

    def ask(self, indexes: list[int]) -> None:
        with self.cond:
            self.asked.extend(indexes)
            if self.source.served >= 9:
                self.source.most_asked_ahead = max(self.source.most_asked_ahead, len(self.asked))
            self.cond.notify_all()

    def next_chunk(self) -> tuple[int, bytes]:
        if self.source.served == 0:  # orderings a test asks for, whatever threads the CPU runs first
            if self.source.gate is not None:
                self.source.gate.wait(timeout=5)  # every gated source reached its first chunk
            if self.source.after is not None:
                assert self.source.after.wait(timeout=5), f"{self.source.label} waited in vain"
        if self.source.freeze_after is not None and self.source.served >= self.source.freeze_after:
            self.source.frozen.set()  # a peer stopped (SIGSTOP, a network gone silent): nothing until closed
            with self.cond:
                self.cond.wait_for(lambda: self.closed, timeout=30)
            raise P2PError("cancelled")
        with self.cond:
            self.cond.wait_for(lambda: self.asked or self.closed, timeout=5)
            if self.closed or not self.asked:
                raise P2PError("stream closed")
            index = self.asked.pop(0)
        time.sleep(self.source.delay)
        holds = self.source.holds
        if holds is not None and index not in holds:
            self.source.not_held += 1
            raise NotHeld(index, ChunkMap.of(set(holds), self.source._manifest.chunk_count))
        self.source.served += 1
        self.source.delivered.append(index)
        self.source.started.set()
        if self.source.die_after is not None and self.source.served > self.source.die_after:
            self.source.gone.set()
            raise P2PError(f"{self.source.label} went away")
        data = self.source.data[index * CHUNK : (index + 1) * CHUNK]
        if self.source.corrupt:
            data = b"\x00" * len(data)
        return index, data

    def close(self) -> None:
        with self.cond:
            if not self.closed:
                self.source.gauge.change(-1)
            self.closed = True
            self.cond.notify_all()


class MemorySource:
    def __init__(
        self,
        label: str,
        data: bytes,
        manifest: Manifest,
        corrupt: bool = False,
        die_after: int | None = None,
        gauge: Gauge | None = None,
        gate: threading.Barrier | None = None,
        after: threading.Event | None = None,
        freeze_after: int | None = None,
        unreachable: threading.Event | None = None,
        holds: set[int] | None = None,
        delay: float = 0.0,
    ):
        self.label, self.data, self._manifest = label, data, manifest
        self.corrupt, self.die_after, self.served = corrupt, die_after, 0
        self.gauge, self.opened, self.gate, self.after = gauge or Gauge(), 0, gate, after
        self.started, self.gone = threading.Event(), threading.Event()  # served a chunk; went away
        self.freeze_after, self.frozen = freeze_after, threading.Event()
        self.unreachable = unreachable  # its manifest waits for this (a dropped SYN: only a timeout ends it)
        self.holds = holds  # a partial source: the chunks it holds (a test may add to them meanwhile)
        self.partial = holds is not None
        self.not_held = 0  # answers "not held yet"
        self.delivered: list[int] = []  # chunk indexes sent, in order
        self.delay = delay  # seconds each chunk takes (a slow peer)
        self.most_asked_ahead = 0  # chunks asked and not yet sent, at most, after its first eight

    def manifest(self, sha256: str, timeout: float) -> Manifest:
        if self.unreachable is not None:
            self.unreachable.wait(timeout)
            raise P2PError("manifest: timed out")
        return self._manifest

    def chunk_stream(self, sha256: str) -> MemoryStream:
        return MemoryStream(self)


DATA = bytes(range(256)) * (CHUNK * 40 // 256 + 3)  # 40 full chunks and a short one


def test_a_file_of_one_chunk_asks_nobody_for_its_manifest(tmp_path):
    """Its sha256 gives it; a source asked for it here would answer only after its timeout."""
    photo = bytes(range(256)) * 100
    m, wanted = make(photo)
    source = MemorySource("camera", photo, m, unreachable=threading.Event())
    result = Download(wanted, [source], tmp_path / "photo.jpg", stall_seconds=30).run()
    assert (tmp_path / "photo.jpg").read_bytes() == photo and result.per_source == {"camera": 1}


def test_a_one_chunk_manifest_that_the_tracker_does_not_vouch_for_is_not_taken(tmp_path):
    photo = bytes(range(256)) * 100
    m, wanted = make(photo)
    wrong = dataclasses.replace(wanted, chunk_list_sha256="0" * 64)
    with pytest.raises(Unavailable, match="does not match the chunk list the tracker vouches for"):
        Download(wrong, [MemorySource("camera", photo, m)], tmp_path / "photo.jpg").run()
    assert not (tmp_path / "photo.jpg").exists()


def test_chunks_spread_over_sources(tmp_path):
    m, wanted = make(DATA)
    gate = threading.Barrier(3)  # no source may finish everything before the others have started
    sources = [MemorySource(f"s{i}", DATA, m, gate=gate) for i in range(3)]
    result = Download(wanted, sources, tmp_path / "out").run()
    assert (tmp_path / "out").read_bytes() == DATA
    assert sum(result.per_source.values()) == m.chunk_count
    # every source served chunks (which copy of a chunk is written first is a race the endgame
    # decides: a source starved of CPU can see its whole window fetched, faster, by the others)
    assert all(s.served > 0 for s in sources)


def test_corrupt_source_is_dropped_and_chunks_refetched(tmp_path):
    m, wanted = make(DATA)
    liar = MemorySource("liar", DATA, m, corrupt=True)
    sources = [liar, MemorySource("honest", DATA, m, after=liar.started)]  # the liar is heard
    result = Download(wanted, sources, tmp_path / "out").run()
    assert (tmp_path / "out").read_bytes() == DATA
    assert "hash mismatch" in result.dropped["liar"] and result.per_source == {"honest": m.chunk_count}


def test_a_small_file_written_by_its_receiver_is_verified_all_the_same(tmp_path):
    """A file of one chunk starts no writer thread: the receiver checks and writes it."""
    small = DATA[:1000]
    m, wanted = make(small)
    sources = [MemorySource("liar", small, m, corrupt=True), MemorySource("honest", small, m)]
    result = Download(wanted, sources, tmp_path / "out", max_sources=1).run()  # the liar first, alone
    assert (tmp_path / "out").read_bytes() == small
    assert "hash mismatch" in result.dropped["liar"] and result.per_source == {"honest": 1}


def test_dying_source_is_dropped(tmp_path):
    m, wanted = make(DATA)
    dies = MemorySource("dies", DATA, m, die_after=5)
    sources = [dies, MemorySource("stays", DATA, m, after=dies.gone)]  # it dies mid-way, not never
    result = Download(wanted, sources, tmp_path / "out").run()
    assert (tmp_path / "out").read_bytes() == DATA and "went away" in result.dropped["dies"]


def test_at_most_max_sources_stream_at_once_and_spares_replace_the_dropped(tmp_path):
    m, wanted = make(DATA)
    gauge = Gauge()
    both_asked = threading.Barrier(2)  # both die, even if one thread is starved of CPU
    dying = [MemorySource(f"dies{i}", DATA, m, die_after=0, gauge=gauge, gate=both_asked) for i in range(2)]
    spares = [MemorySource(f"spare{i}", DATA, m, gauge=gauge) for i in range(4)]
    result = Download(wanted, [*dying, *spares], tmp_path / "out", max_sources=2).run()
    assert (tmp_path / "out").read_bytes() == DATA
    assert gauge.peak == 2 and gauge.open == 0
    assert set(result.dropped) == {"dies0", "dies1"}
    assert [s.opened for s in spares] == [1, 1, 0, 0]  # the first two spares stepped in, the rest never connected
    assert set(result.per_source) <= {"dies0", "dies1", "spare0", "spare1"}
    assert sum(result.per_source.values()) == m.chunk_count


def test_a_source_that_goes_silent_is_dropped_and_the_rest_resumes_elsewhere(tmp_path):
    m, wanted = make(DATA)
    silent = MemorySource("silent", DATA, m, freeze_after=5)
    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"silent: sent nothing for 0\.3 s"):
        Download(wanted, [silent], tmp_path / "out", stall_seconds=0.3).run()
    assert time.monotonic() - started < 20  # cut off, not waited on for ever (nor the test's 30 s)
    assert not (tmp_path / "out").exists()
    result = Download(wanted, [MemorySource("other", DATA, m)], tmp_path / "out").run()
    assert (tmp_path / "out").read_bytes() == DATA
    assert result.chunks_reused == 5 and result.chunks_fetched == m.chunk_count - 5


def test_a_silent_source_among_others_is_dropped_for_its_silence(tmp_path):
    m, wanted = make(DATA)
    silent = MemorySource("silent", DATA, m, freeze_after=0)
    slow = threading.Event()  # the other source waits until the silent one is cut off

    class Patient(MemorySource):
        def chunk_stream(self, sha256: str) -> MemoryStream:
            assert slow.wait(timeout=20), "the silent source was never cut off"
            return super().chunk_stream(sha256)

    download = Download(wanted, [silent, Patient("patient", DATA, m)], tmp_path / "out", stall_seconds=0.3)
    cut_off = lambda: "silent" in download._stalled  # noqa: E731
    watcher = threading.Thread(target=lambda: (wait_for(cut_off, timeout=20, interval=0.01, what="a cut-off"), slow.set()))
    watcher.start()
    result = download.run()
    watcher.join()
    assert (tmp_path / "out").read_bytes() == DATA
    assert result.dropped == {"silent": "sent nothing for 0.3 s"} and result.per_source == {"patient": m.chunk_count}


def test_unreachable_sources_listed_first_do_not_hold_up_the_download(tmp_path):
    m, wanted = make(DATA)
    release = threading.Event()
    dark = [MemorySource(f"dark{i}", DATA, m, unreachable=release, freeze_after=0) for i in range(3)]
    started = time.monotonic()
    try:
        result = Download(wanted, [*dark, MemorySource("lit", DATA, m)], tmp_path / "out", stall_seconds=30).run()
    finally:
        release.set()
    assert time.monotonic() - started < 15  # ~3 s (one more source asked each second), not 3 x 30 s
    assert (tmp_path / "out").read_bytes() == DATA and result.per_source == {"lit": m.chunk_count}


def test_only_a_source_that_has_delivered_gets_endgame_copies(tmp_path):
    """Copies of the last chunks (two per chunk at most) taken by sources that never answer
    (frozen, unreachable) left the answering source waiting for the stall cut-off."""

    m, _ = make(DATA)
    schedule = ChunkSchedule(PartialFile(tmp_path / "out", m), set())
    first = schedule.take("answers")
    schedule.done(first, "answers", CHUNK, first=True)  # it has delivered
    while len(schedule.pending) > 3:
        schedule.take("answers")
    silent = [schedule.take("silent0") for _ in range(3)]  # the last new chunks
    assert None not in silent and not schedule.pending
    assert schedule.take("silent1") is None  # never delivered: no copy of anyone's chunk
    copies = [schedule.take("answers") for _ in range(3)]
    assert copies == silent  # the answering source can still fetch every one of them
    schedule.partial.close()


def test_a_partial_source_is_asked_for_what_it_holds_and_whole_sources_for_the_rest_first(tmp_path):
    m, _ = make(DATA)
    schedule = ChunkSchedule(PartialFile(tmp_path / "out", m), {"partial"})
    evens = {i for i in range(m.chunk_count) if i % 2 == 0}
    first = schedule.take("partial")  # nothing heard of it yet: asked as if it held everything
    assert first is not None
    schedule.give_back("partial", [first])  # as a "not held" answer does, with its chunk map:
    schedule.heard("partial", ChunkMap.of(evens, m.chunk_count))
    odds = m.chunk_count - len(evens)
    assert all(schedule.take("whole") % 2 == 1 for _ in range(odds))  # rarest first: no partial source has them
    taken = [schedule.take("partial") for _ in range(len(evens))]
    assert sorted(taken) == sorted(evens)
    schedule.give_back("whole", [1])  # the whole source was dropped: chunk 1 is to fetch again
    schedule.probed["partial"] = time.monotonic() - PROBE_SECONDS  # its last probe was that long ago
    assert schedule.take("partial") == 1  # so it is asked beyond its map (a probe)
    schedule.give_back("partial", [1])  # "not held" again
    assert schedule.take("partial") is None  # and not asked again before PROBE_SECONDS
    schedule.partial.close()


def test_a_crowd_shares_out_the_chunks_nobody_holds_in_equal_parts_without_a_word():
    """Each member draws the same lines from the same crowd: every chunk falls to exactly one."""
    crowd = {"erin", "frank", "gina"}
    places = {name: crowd_share(name, crowd) for name in crowd}
    shares = {name: {i for i in range(100) if i % size == place} for name, (place, size) in places.items()}
    assert set().union(*shares.values()) == set(range(100))
    assert sum(len(s) for s in shares.values()) == 100  # none falls to two
    assert sorted(len(s) for s in shares.values()) == [33, 33, 34]


def test_a_whole_source_is_asked_first_for_this_downloads_share_of_what_nobody_holds(tmp_path):
    """Two peers fetch one file from a seed and from each other: each asks the seed for its own
    share of the chunks neither holds, then for the other's from its far end, and leaves the
    other's last few to it; a slow other, all but its window; a gone one, all."""
    m, _ = make(DATA)
    frank = "frank@127.0.0.1:9"
    schedule = ChunkSchedule(PartialFile(tmp_path / "out", m), {frank}, me="erin")
    place, size = crowd_share("erin", {"erin", "frank"})
    assert schedule.share == (place, size) == (0, 2)
    mine = {i for i in range(m.chunk_count) if i % size == place}
    held_by_frank = {0, 1}
    schedule.heard(frank, ChunkMap.of(held_by_frank, m.chunk_count))
    rare_mine = sorted(mine - held_by_frank)
    assert [schedule.take("seed") for _ in range(len(rare_mine))] == rare_mine  # its own share first, in order
    rare_theirs = sorted(set(range(m.chunk_count)) - mine - held_by_frank)
    stolen = [schedule.take("seed") for _ in range(len(rare_theirs) - STEAL_MARGIN)]
    assert stolen == rare_theirs[::-1][: len(stolen)]  # then the other's from its end: frank asks from its start
    schedule.probed[frank] = time.monotonic()  # not asked beyond its map now
    asked = schedule.take(frank)  # what frank holds comes from frank
    assert asked in held_by_frank
    (other,) = held_by_frank - {asked}
    schedule.delivered.add("seed")
    schedule.covered = dict.fromkeys(schedule.covered, time.monotonic())  # frank got its chunks just now
    assert schedule.take("seed") is None  # frank's last few are frank's to fetch; no endgame copy of `asked` either
    schedule.grew[frank] = (2, time.monotonic() - STALLING_SECONDS - 0.1)  # frank's map stopped growing: a slow link
    slow = [schedule.take("seed") for _ in range(STEAL_MARGIN - SLOW_MARGIN)]
    assert slow == rare_theirs[SLOW_MARGIN:STEAL_MARGIN][::-1]
    assert schedule.take("seed") is None
    schedule.covered[other] = time.monotonic() - HELD_SECONDS - 0.1  # frank held it that long and has not given it
    assert schedule.take("seed") == other
    schedule.left(frank, dropped=True)  # frank is gone: its share falls to the seed
    assert schedule.share is None
    rest = {schedule.take("seed") for _ in range(SLOW_MARGIN)}
    assert rest == set(rare_theirs[:SLOW_MARGIN])
    schedule.partial.close()


def test_a_partial_source_whose_map_stopped_growing_leaves_the_crowd(tmp_path):
    """A download stopped half-way and left in a share is still served, but nobody fetches into it:
    its share of the chunks nobody holds is not left for it. Heard growing again, it is back."""
    m, _ = make(DATA)
    schedule = ChunkSchedule(PartialFile(tmp_path / "out", m), {"frank@127.0.0.1:1", "old@127.0.0.1:2"}, me="erin")
    three, two = crowd_share("erin", {"erin", "frank", "old"}), crowd_share("erin", {"erin", "frank"})
    assert three != two and schedule.share == three
    schedule.heard("old@127.0.0.1:2", ChunkMap.of({5, 6}, m.chunk_count))
    schedule.heard("frank@127.0.0.1:1", ChunkMap.of({1}, m.chunk_count))
    assert schedule.share == three  # both just heard of
    long_ago = time.monotonic() - CROWD_SECONDS - 1
    schedule.grew["old@127.0.0.1:2"] = (2, long_ago)  # its map last grew that long ago...
    schedule.heard("old@127.0.0.1:2", ChunkMap.of({5, 6}, m.chunk_count))  # ...and has not since
    assert schedule.share == two
    schedule.grew["frank@127.0.0.1:1"] = (1, long_ago)
    schedule.heard("frank@127.0.0.1:1", ChunkMap.of({1, 2}, m.chunk_count))  # frank's grew: still fetching
    assert schedule.share == two
    schedule.heard("old@127.0.0.1:2", ChunkMap.of({5, 6, 7}, m.chunk_count))  # old fetches again
    assert schedule.share == three
    schedule.partial.close()


def test_a_crowd_member_that_goes_away_leaves_its_share_and_its_chunks_to_the_seed_at_once(tmp_path):
    """Not CROWD_SECONDS later, when its map would be found to have stopped growing: the seed is
    asked at once for what frank held and for frank's share."""
    m, wanted = make(DATA)
    frank = MemorySource("frank@127.0.0.1:9", DATA, m, holds=set(range(0, m.chunk_count, 2)), die_after=3)
    seed = MemorySource("seed", DATA, m)
    started = time.monotonic()
    result = Download(wanted, [seed, frank], tmp_path / "out", me="erin").run()
    assert (tmp_path / "out").read_bytes() == DATA
    assert frank.gone.is_set() and "frank@127.0.0.1:9" in result.dropped
    assert time.monotonic() - started < CROWD_SECONDS


def test_whole_and_partial_sources_together(tmp_path):
    m, wanted = make(DATA)
    evens = {i for i in range(m.chunk_count) if i % 2 == 0}
    partial = MemorySource("partial", DATA, m, holds=evens)
    whole = MemorySource("whole", DATA, m, after=partial.started)  # starts once the partial one has served
    result = Download(wanted, [whole, partial], tmp_path / "out").run()
    assert (tmp_path / "out").read_bytes() == DATA
    assert partial.delivered and set(partial.delivered) <= evens
    assert result.per_source["partial"] > 0 and not result.dropped
    assert partial.not_held <= WINDOW + 2  # its first window (asked blind) tells its map, then only what it holds


def test_partial_sources_alone_complete_a_file_between_them(tmp_path):
    m, wanted = make(DATA)
    first_half = set(range(m.chunk_count // 2))
    sources = [
        MemorySource("front", DATA, m, holds=first_half),
        MemorySource("back", DATA, m, holds=set(range(m.chunk_count)) - first_half),
    ]
    result = Download(wanted, sources, tmp_path / "out").run()
    assert (tmp_path / "out").read_bytes() == DATA
    assert result.per_source == {"front": len(first_half), "back": m.chunk_count - len(first_half)}


def test_a_partial_source_is_asked_again_as_it_gets_more(tmp_path):
    m, wanted = make(DATA)
    holds = set(range(10))
    growing = MemorySource("growing", DATA, m, holds=holds)

    def download_on() -> None:  # the peer's own download goes on once the first ten were taken
        wait_for(lambda: len(growing.delivered) >= 10, timeout=20, interval=0.01, what="the first ten chunks")
        holds.update(range(m.chunk_count))

    thread = threading.Thread(target=download_on)
    thread.start()
    result = Download(wanted, [growing], tmp_path / "out", stall_seconds=20).run()
    thread.join()
    assert (tmp_path / "out").read_bytes() == DATA
    assert result.per_source == {"growing": m.chunk_count} and growing.not_held >= 1


def test_partial_sources_that_lack_the_rest_end_the_download_resumably(tmp_path):
    m, wanted = make(DATA)
    half = MemorySource("half", DATA, m, holds=set(range(20)))
    with pytest.raises(Unavailable, match=r"held none of the chunks still missing for 0\.5 s"):
        Download(wanted, [half], tmp_path / "out", stall_seconds=0.5).run()
    result = Download(wanted, [MemorySource("whole", DATA, m)], tmp_path / "out").run()
    assert (tmp_path / "out").read_bytes() == DATA
    assert result.chunks_reused == 20 and result.chunks_fetched == m.chunk_count - 20


def test_sources_listed_after_the_start_join_the_download(tmp_path):
    m, wanted = make(DATA)
    late = MemorySource("late", DATA, m, holds=set(range(m.chunk_count)))  # started downloading meanwhile
    early = MemorySource("early", DATA, m, after=late.started)  # delivers once the late one has
    asked: list[int] = []

    def listed_now() -> list[MemorySource]:
        asked.append(1)
        if len(asked) == 1:
            raise P2PError("tracker unreachable")  # a failed refresh is only skipped
        return [MemorySource("early", DATA, m), late]  # early is known already: not added twice

    result = Download(wanted, [early], tmp_path / "out", find_sources=listed_now, refresh_seconds=0.05).run()
    assert (tmp_path / "out").read_bytes() == DATA
    assert result.per_source["late"] > 0 and early.opened == 1 and len(asked) >= 2


def test_a_partial_source_whose_map_lists_the_chunk_it_did_not_give_is_dropped(tmp_path):
    m, wanted = make(DATA)

    class Boasting(MemorySource):  # says "not held", with a map claiming every chunk
        def chunk_stream(self, sha256: str) -> MemoryStream:
            stream = super().chunk_stream(sha256)
            inner = stream.next_chunk

            def next_chunk() -> tuple[int, bytes]:
                try:
                    return inner()
                except NotHeld as answer:
                    raise NotHeld(answer.index, ChunkMap.of(range(m.chunk_count), m.chunk_count)) from None

            stream.next_chunk = next_chunk  # type: ignore[method-assign]
            return stream

    boasting = Boasting("boasting", DATA, m, holds=set(range(5)))
    whole = MemorySource("whole", DATA, m, delay=0.01)  # ~0.4 s in all: time for a loop to show
    result = Download(wanted, [whole, boasting], tmp_path / "out").run()
    assert (tmp_path / "out").read_bytes() == DATA and result.per_source["whole"] >= m.chunk_count - 5
    assert boasting.not_held == 1 and "listed it as held" in result.dropped["boasting"]  # dropped, not asked in a loop


def test_a_slow_source_is_asked_ahead_only_for_what_it_delivers_in_a_quarter_second(tmp_path):
    data = DATA[: 24 * CHUNK]
    m, wanted = make(data)
    slow = MemorySource("slow", data, m, delay=0.1)  # 10 chunks a second: 3 asked ahead, not 8
    result = Download(wanted, [slow], tmp_path / "out").run()
    assert (tmp_path / "out").read_bytes() == data and result.per_source == {"slow": 24}
    assert 2 <= slow.most_asked_ahead <= 4


def test_a_partial_source_dropped_for_having_nothing_rejoins_once_it_holds_the_whole_file(tmp_path):
    m, wanted = make(DATA)
    partial = MemorySource("p", DATA, m, holds=set(range(20)))
    slow = MemorySource("slow", DATA, m, delay=0.2)  # alone, it would take ~4 s for the rest

    def listed_now() -> list[MemorySource]:  # the tracker lists p again, now with the whole file
        return [MemorySource("p", DATA, m)] if "p" in download.dropped else []

    download = Download(
        wanted, [slow, partial], tmp_path / "out", stall_seconds=0.3, find_sources=listed_now, refresh_seconds=0.05
    )
    result = download.run()
    assert (tmp_path / "out").read_bytes() == DATA
    assert result.per_source["p"] > 20 and "p" not in result.dropped  # more than its first 20


def test_the_tracker_is_asked_for_sources_often_at_first_then_less_and_less(tmp_path):
    """A crowd starting together finds itself early (asks one interval apart, REFRESH_EARLY times);
    a long download then asks at intervals doubling."""
    from peer.downloader import REFRESH_EARLY

    m, wanted = make(DATA)
    asked: list[float] = []
    started = time.monotonic()
    slow = MemorySource("slow", DATA, m, delay=0.025)  # ~1 s in all

    def listed_now() -> list[MemorySource]:
        asked.append(time.monotonic() - started)
        return []

    Download(wanted, [slow], tmp_path / "out", find_sources=listed_now, refresh_seconds=0.05).run()
    took = time.monotonic() - started
    assert took > 0.05 * REFRESH_EARLY * 1.5  # long enough for the early asks and some after
    # after 0.05, 0.10, ... 0.40 s, then 0.50, 0.70, 1.10...: every 0.05 s would be took / 0.05 times
    assert REFRESH_EARLY <= len(asked) <= REFRESH_EARLY + math.log2(took / 0.05) + 2
    assert asked[REFRESH_EARLY - 1] < asked[0] + 0.05 * (REFRESH_EARLY - 1) + 0.3  # not doubling meanwhile


def test_a_rate_cap_spaces_what_all_sources_together_deliver(tmp_path):
    from peer.throttle import BURST_SECONDS, Throttle

    m, wanted = make(DATA)
    rate = len(DATA)  # the whole file in one second, from three sources together
    sources = [MemorySource(f"s{i}", DATA, m) for i in range(3)]
    started = time.monotonic()
    Download(wanted, sources, tmp_path / "out", throttle=Throttle(rate)).run()
    elapsed = time.monotonic() - started
    assert (tmp_path / "out").read_bytes() == DATA
    assert elapsed >= 1.0 - BURST_SECONDS  # a lower bound only: a slow machine cannot fail it


def test_manifest_not_matching_the_tracker_is_refused(tmp_path):
    m, wanted = make(DATA)
    fake = (hashlib.sha256(b"x").digest(),) * (m.chunk_count - 1)
    forged = Manifest(m.sha256, m.size, m.chunk_size, (*fake, m.chunk_digests[-1]))  # ends right: shape passes
    result = Download(wanted, [MemorySource("forger", DATA, forged), MemorySource("good", DATA, m)], tmp_path / "out").run()
    assert "does not match" in result.dropped["forger"] and (tmp_path / "out").read_bytes() == DATA


def test_all_sources_failing_keeps_progress_for_a_resume(tmp_path):
    m, wanted = make(DATA)
    with pytest.raises(Unavailable, match="could not be fetched"):
        Download(wanted, [MemorySource("a", DATA, m, die_after=10)], tmp_path / "out", window=1).run()
    assert not (tmp_path / "out").exists()
    part, have = staging_paths(tmp_path / "out", m.sha256)
    assert part.exists() and have.exists()
    result = Download(wanted, [MemorySource("b", DATA, m)], tmp_path / "out").run()
    assert result.chunks_reused == 10 and result.chunks_fetched == m.chunk_count - 10
    assert (tmp_path / "out").read_bytes() == DATA and not part.exists() and not have.exists()


def test_a_file_changed_since_an_interrupted_get_is_fetched_reusing_what_both_versions_share(tmp_path):
    old_m, _ = make(DATA)
    cut_short = PartialFile(tmp_path / "out", old_m)  # a get of the old version, cut short
    for i in range(25):
        cut_short.write_chunk(i, DATA[i * CHUNK : (i + 1) * CHUNK])
    cut_short.close()
    new = DATA[: 20 * CHUNK + 100] + b"edited" + DATA[20 * CHUNK + 106 :] + b"and then it grew" * 9000
    new_m, wanted = make(new)
    result = Download(wanted, [MemorySource("a", new, new_m)], tmp_path / "out").run()
    assert (tmp_path / "out").read_bytes() == new
    # the 25 chunks it had but chunk 20, edited: each chunk is checked on its own, wherever it lies
    assert result.chunks_reused == 24 and result.chunks_fetched == new_m.chunk_count - 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the old version's staged files went with it


def test_a_newer_version_fetched_over_the_old_one_reuses_its_unchanged_chunks(tmp_path):
    """`get --force` of a file that changed: the copy it replaces is read for what is still the same."""
    (tmp_path / "out").write_bytes(DATA)
    new = DATA[: 7 * CHUNK] + b"edited" + DATA[7 * CHUNK + 6 :] + b"and then it grew" * 9000
    new_m, wanted = make(new)
    result = Download(wanted, [MemorySource("a", new, new_m)], tmp_path / "out").run()
    assert (tmp_path / "out").read_bytes() == new
    # DATA's 40 whole chunks but chunk 7; its short last chunk is whole, and other, in the new one
    assert result.chunks_reused == 39 and result.chunks_fetched == new_m.chunk_count - 39


def test_an_older_copy_that_differs_throughout_is_given_up_on_after_a_few_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(chunk_store, "COPY_MISSES", 3)
    (tmp_path / "out").write_bytes(b"x" + DATA)  # a byte put in front: every chunk differs
    m, wanted = make(DATA)
    rejected: list[int] = []
    real_write = PartialFile.write_chunk

    def write_chunk(self: PartialFile, index: int, data: bytes) -> Write:
        written = real_write(self, index, data)
        if written is Write.REJECTED:
            rejected.append(index)
        return written

    monkeypatch.setattr(PartialFile, "write_chunk", write_chunk)
    result = Download(wanted, [MemorySource("a", DATA, m)], tmp_path / "out").run()
    assert (tmp_path / "out").read_bytes() == DATA and result.chunks_reused == 0
    assert rejected == [0, 1, 2]  # not all 40


def test_an_earlier_version_being_written_is_left_alone(tmp_path):
    old_m, _ = make(DATA)
    writing = PartialFile(tmp_path / "out", old_m)  # another transfer writes it (holds its lock)
    writing.write_chunk(0, DATA[:CHUNK])
    new = b"x" + DATA[1:]
    new_m, wanted = make(new)
    result = Download(wanted, [MemorySource("a", new, new_m)], tmp_path / "out").run()
    assert (tmp_path / "out").read_bytes() == new and result.chunks_reused == 0  # no chunk in common
    assert writing.part_path.exists() and writing.have_path.exists()
    assert writing.write_chunk(1, DATA[CHUNK : 2 * CHUNK]) is Write.WRITTEN
    writing.close()


def test_partial_file_rejects_bad_bytes_and_a_chain_not_ending_in_the_sha256(tmp_path):
    m, _ = make(DATA)
    partial = PartialFile(tmp_path / "f", m)
    assert partial.write_chunk(0, b"wrong") is Write.REJECTED
    assert partial.write_chunk(10_000, DATA[:CHUNK]) is Write.REJECTED
    assert partial.write_chunk(0, DATA[:CHUNK]) is Write.WRITTEN
    assert partial.write_chunk(0, DATA[:CHUNK]) is Write.ALREADY_HELD
    # chunks that match their digests prove the file's sha256 only if the chain ends in it
    liar = Manifest("0" * 64, m.size, m.chunk_size, m.chunk_digests)
    with pytest.raises(P2PError, match="last chunk digest must be the file's sha256"):
        PartialFile(tmp_path / "g", liar)
    assert not (tmp_path / "g").exists()
    partial.close()


def test_resume_distrusts_chunks_whose_bytes_changed(tmp_path):
    m, _ = make(DATA)
    partial = PartialFile(tmp_path / "f", m)
    for i in range(4):
        partial.write_chunk(i, DATA[i * CHUNK : (i + 1) * CHUNK])
    assert partial.bytes_held == 4 * CHUNK
    partial.close()
    with open(partial.part_path, "r+b") as f:
        f.seek(CHUNK + 10)
        f.write(b"\xff\xff")
    again = PartialFile(tmp_path / "f", m)
    assert again.held() == [0, 2, 3] and again.bytes_held == 3 * CHUNK
    again.close()


def test_one_writer_per_staged_file(tmp_path):
    m, _ = make(DATA)
    first = PartialFile(tmp_path / "f", m)
    with pytest.raises(P2PError, match="already writing"):
        PartialFile(tmp_path / "f", m)
    first.close()
    PartialFile(tmp_path / "f", m).close()  # free again once the first writer let go


def test_a_failure_while_writing_stops_the_download_instead_of_hanging_it(tmp_path, monkeypatch):
    m, wanted = make(DATA)

    def broken(self, index, data):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(PartialFile, "write_chunk", broken)
    result: list[BaseException] = []
    download = Download(wanted, [MemorySource("a", DATA, m)], tmp_path / "out")
    runner = threading.Thread(target=lambda: _capture(result, download.run))
    runner.start()
    runner.join(timeout=20)
    assert not runner.is_alive(), "the download hung"
    assert isinstance(result[0], P2PError) and "simulated bug" in str(result[0])
    assert not (tmp_path / "out").exists()


def _capture(into: list[BaseException], call) -> None:
    try:
        call()
    except BaseException as exc:  # the test inspects whatever was raised
        into.append(exc)


def test_a_download_streamed_in_order_asks_for_chunks_in_file_order(tmp_path):
    """`get -o - | tar x` reads the file as it comes: it must not start at a random chunk."""
    m, _ = make(DATA)
    for in_order in (True, False):
        schedule = ChunkSchedule(PartialFile(tmp_path / f"out-{in_order}", m), set(), in_order=in_order)
        first = schedule.take("whole")
        assert first == 0 if in_order else first is not None
        schedule.heard("partial", ChunkMap.of({1, 2}, m.chunk_count))  # rarest first would skip 1 and 2
        taken = [first] + [schedule.take("whole") for _ in range(m.chunk_count - 1)]
        if in_order:
            assert taken == list(range(m.chunk_count))
        assert sorted(taken) == list(range(m.chunk_count))
        schedule.partial.close()


def test_a_file_of_one_chunk_is_staged_without_a_chunk_record(tmp_path):
    """Its chunk written is the whole file, renamed at once: nothing to resume or serve meanwhile,
    and making and removing the record cost a fifth of fetching a small file."""
    data = b"a small file"
    one = Manifest.implied(hashlib.sha256(data).hexdigest(), len(data), chunking.DEFAULT_CHUNK_SIZE)
    assert one is not None
    partial = PartialFile(tmp_path / "small.txt", one)
    part, have = staging_paths(tmp_path / "small.txt", one.sha256)
    assert part.exists() and not have.exists()
    assert partial.write_chunk(0, data) is Write.WRITTEN and not have.exists()
    assert partial.finish().read_bytes() == data and not part.exists()

    (tmp_path / "source.bin").write_bytes(bytes(range(256)) * 8192)  # two chunks: recorded as they come, for a resume
    two = Manifest.from_hashes(chunking.hash_file(tmp_path / "source.bin"))
    partial = PartialFile(tmp_path / "big.bin", two)
    assert staging_paths(tmp_path / "big.bin", two.sha256)[1].exists()
    partial.close()
