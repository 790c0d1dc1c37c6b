"""Which chunk of a download goes to which source: dynamic assignment, chunk maps of partial
sources, rarest first, a crowd's shares, and the endgame. Pure bookkeeping under one lock, no
I/O: the downloader's source threads ask it for work and report back."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Sequence

from peer.availability import ChunkMap
from peer.chunk_store import PartialFile

ENDGAME_COPIES = 2  # near the end a missing chunk may be asked from this many sources at once
# A partial source (a peer still downloading the file) is asked for a chunk beyond its chunk map
# this often, to learn what it has verified since (its "not held" answer carries its whole map):
# with a stale map, whole sources are asked for chunks it could give, and a crowd's last chunks
# reach the others late (every 1 s: 13.7 s and 1.06 copies of the seed in bench_swarm; every
# 0.25 s: 13.4 s and 1.03). A map is a bit a chunk: 4 KiB for a 32 GiB file.
PROBE_SECONDS = 0.25
# A partial source whose chunk map has not grown for this long is not counted in the crowd
# fetching the file (see crowd_share): nobody is downloading into it any more. Its map is heard
# every PROBE_SECONDS; a peer fetching 1 MiB chunks at 200 KiB/s still gains
# one. Misjudged, a slow peer only has its share picked at random by the others, as before. A
# source is first counted in: until it has been heard for this long, it may be fetching.
CROWD_SECONDS = 5.0
# A member of a crowd that has fetched its share takes chunks of another's only from a share with
# more than this many left, the last of it: its owner asks for its own from the first, at most a
# window (8) ahead. Of an owner whose chunk map has not grown for STALLING_SECONDS (a slow link),
# the last but SLOW_MARGIN (its window, a slow source's).
STEAL_MARGIN = 8
STALLING_SECONDS = 1.0
SLOW_MARGIN = 2
# A chunk members hold is asked of a whole source in a crowd only once it has been held that long
# and still not come from them (its holders are slow to give it: a slow uplink).
HELD_SECONDS = 2.0


class ChunkSchedule:
    """Which chunk goes to which source; shared by the source workers under one lock.

    Each download starts at a chunk of its own (at random) and goes round: downloads of one file
    from one source hold different chunks early on, which they can then swap. A partial source
    is asked only for chunks its chunk map lists, and a whole source first for chunks no partial
    source holds (rarest first, as BitTorrent clients pick pieces); in a crowd fetching the file,
    those this download owns (see crowd_share and _rarest).
    in_order asks for chunks in file order instead, as BitTorrent clients' sequential mode does
    for a reader that takes the file as it comes (`get -o - | tar x`).
    """

    def __init__(self, partial: PartialFile, partial_sources: set[str], me: str = "", in_order: bool = False):
        self.partial = partial
        self.cond = threading.Condition()
        self.in_order = in_order
        self.pending: deque[int] = deque(partial.missing())
        if not in_order:
            self.pending.rotate(-random.randrange(len(self.pending) or 1))
        self.me = me
        self.partial_sources: set[str] = set()
        self.share: tuple[int, int] | None = None  # this download's share of a crowd (crowd_share); None: no crowd
        self.crowd: list[str] = []  # the names of the crowd's members, in the order of their places
        self.grew: dict[str, tuple[int, float]] = {}  # chunks each partial source held, and when that last grew
        for label in partial_sources:
            self.set_partial(label, True)
        self.maps: dict[str, ChunkMap] = {}  # what each partial source holds, as last heard
        self.covered: dict[int, float] = {}  # chunks some partial source holds, since when (monotonic)
        self.probed: dict[str, float] = {}  # when each partial source was last asked beyond its map
        self.inflight: dict[int, set[str]] = {}
        self.received = 0
        self.per_source: dict[str, int] = {}
        self.fetched = 0
        self.delivered: set[str] = set()  # sources that have sent a chunk

    def take(self, label: str) -> int | None:
        with self.cond:
            index = self._next_pending(label)
            if index is not None:
                self.inflight.setdefault(index, set()).add(label)
                return index
            # endgame: help with a chunk another source is still fetching. Only a source that has
            # delivered something helps: copies held by sources that never answer (frozen, or
            # unreachable) would take the places of the ones that do until the stall cut-off
            if label not in self.delivered or self._left_to_the_crowd(label):
                return None
            for index, askers in self.inflight.items():
                if (
                    label not in askers
                    and len(askers) < ENDGAME_COPIES
                    and not self.partial.has(index)
                    and self._holds(label, index)
                ):
                    askers.add(label)
                    return index
            return None

    def _left_to_the_crowd(self, label: str) -> bool:
        """Under the lock: label is a whole source and what is still to fetch comes from the crowd
        (see _rarest): no endgame copy of it either."""
        return self.share is not None and bool(self.pending) and label not in self.partial_sources and not self.in_order

    def _holds(self, label: str, index: int) -> bool:
        held = self.maps.get(label)
        return held is None or index in held

    def _next_pending(self, label: str) -> int | None:
        """Under the lock: the next chunk for label to fetch, taken out of pending. A partial source
        not heard from yet is asked as if it held everything: its first "not held" brings its map."""
        while self.pending and self.partial.has(self.pending[0]):
            self.pending.popleft()  # held by now (an endgame copy came first)
        held = self.maps.get(label)
        if held is not None:
            found = None
            now = time.monotonic()
            if now - self.probed.get(label, 0.0) >= PROBE_SECONDS:  # ask beyond its map: the chunk, or what it holds now
                found = next((i for i in reversed(self.pending) if i not in held and not self.partial.has(i)), None)
                self.probed[label] = now
            if found is None:
                found = next((i for i in self.pending if i in held and not self.partial.has(i)), None)
        elif (self.covered or self.share is not None) and label not in self.partial_sources:
            found = self._rarest()
        else:
            return self.pending.popleft() if self.pending else None
        if found is not None:
            self.pending.remove(found)
        return found

    def _rarest(self) -> int | None:
        """Under the lock: for a whole source, a chunk no partial source holds. Alone, any of them
        at random (in order, downloads that learned of each other late would all ask for the
        same next one), else any chunk. In a crowd fetching the file at once (see crowd_share),
        its own share's first; then the last of another's far behind (_stolen); then one members
        have held for HELD_SECONDS and not given; else none: the rest is the others' last few,
        which their owners fetch, and what members hold, which they give. So each chunk leaves
        the seed about once, as BitTorrent's super-seeding aims for: a chunk asked of the seed
        that a member had already taken from it took the seed's rate from members that still
        needed one (see scripts/bench_swarm.py)."""
        if self.in_order:  # the reader waits for the next chunk, whoever else holds it
            return self.pending[0] if self.pending else None
        rare = [i for i in self.pending if i not in self.covered and not self.partial.has(i)]
        self._count_the_crowd()  # a member that stopped growing leaves it now, not at the next map
        if self.share is None:
            return random.choice(rare) if rare else self.pending[0] if self.pending else None
        place, size = self.share
        if (mine := min((i for i in rare if i % size == place), default=None)) is not None:
            return mine
        if (stolen := self._stolen(rare, place, size)) is not None:
            return stolen
        due = time.monotonic() - HELD_SECONDS
        return next((i for i in self.pending if self.covered.get(i, due) < due and not self.partial.has(i)), None)

    def _stolen(self, rare: list[int], place: int, size: int) -> int | None:
        """Under the lock: a chunk of another member's share for one that has fetched its own,
        the last of a share with more than STEAL_MARGIN left (SLOW_MARGIN if its owner has not
        grown for STALLING_SECONDS), at random among those. Its owner asks for its own from the
        first on, a window ahead; taken from the other end, the chunk is one it has not asked
        for and would ask for last."""
        left: dict[int, list[int]] = {}
        for i in rare:
            if i % size != place:
                left.setdefault(i % size, []).append(i)
        now = time.monotonic()
        grew: dict[str, float] = {}
        for label, (_, when) in self.grew.items():
            name = _peer_name(label)
            grew[name] = max(when, grew.get(name, 0.0))
        behind = [
            chunks
            for share, chunks in left.items()
            if len(chunks) > (SLOW_MARGIN if now - grew.get(self.crowd[share], now) > STALLING_SECONDS else STEAL_MARGIN)
        ]
        return max(random.choice(behind)) if behind else None

    def set_partial(self, label: str, partial: bool) -> None:
        """label is (or no longer is) a partial source: a peer fetching the file too."""
        with self.cond:
            if partial:
                self.partial_sources.add(label)
            else:
                self.partial_sources.discard(label)
            self._count_the_crowd()

    def _count_the_crowd(self) -> None:
        """Under the lock: this download's share among itself and the partial sources still
        fetching the file. One whose chunk map has not grown for CROWD_SECONDS (a download
        stopped half-way and left in a share, served as it is) fetches nothing from the seed:
        counted in, its share of the chunks nobody holds would be left to the others' last,
        random picks."""
        now = time.monotonic()
        fetching = [s for s in self.partial_sources if s not in self.grew or now - self.grew[s][1] < CROWD_SECONDS]
        crowd = {self.me} | {_peer_name(source) for source in fetching}
        self.share = crowd_share(self.me, crowd) if self.me and len(crowd) > 1 else None
        self.crowd = sorted(crowd)  # the members' names, by their places

    def left(self, label: str, dropped: bool) -> None:
        """label streams no more: what it holds is not to be had from it now (a whole source
        would otherwise wait for chunks nobody gives); dropped for good, it leaves the crowd too,
        and its share falls to the others."""
        with self.cond:
            self.maps.pop(label, None)
            self._count_covered()
            if dropped:
                self.partial_sources.discard(label)
            self._count_the_crowd()
            self.cond.notify_all()

    def heard(self, label: str, held: ChunkMap | None) -> None:
        """A partial source's chunk map, from its answer for a chunk it did not hold (None: it sent
        one beyond its map, which is out of date: ask it as if it held everything, once more)."""
        with self.cond:
            if held is None:
                self.maps.pop(label, None)
            else:
                self.maps[label] = held
                count = held.count()
                if label not in self.grew or count > self.grew[label][0]:
                    self.grew[label] = (count, time.monotonic())
                self._count_the_crowd()
            self._count_covered()

    def _count_covered(self) -> None:
        """Under the lock: the chunks still missing that some partial source holds, each since
        when it was first heard held (see HELD_SECONDS)."""
        now = time.monotonic()
        holding = [i for i in self.partial.missing() if any(i in m for m in self.maps.values())]
        self.covered = {i: self.covered.get(i, now) for i in holding}

    def done(self, index: int, label: str, size: int, first: bool) -> None:
        if not self._holds(label, index):  # a partial source holds more than its map says
            self.heard(label, None)
        with self.cond:
            self.delivered.add(label)
            self.received += size
            if first:
                self.fetched += 1
                self.per_source[label] = self.per_source.get(label, 0) + 1
            self.inflight.pop(index, None)
            if self.partial.complete:  # nobody waits for one chunk more: only for the end
                self.cond.notify_all()

    def give_back(self, label: str, indexes: Sequence[int]) -> None:
        with self.cond:
            for index in indexes:
                askers = self.inflight.get(index)
                if askers is not None:
                    askers.discard(label)
                    if not askers:
                        del self.inflight[index]
                        if not self.partial.has(index):
                            self.pending.appendleft(index)
            self.cond.notify_all()


def crowd_share(me: str, crowd: set[str]) -> tuple[int, int]:
    """(place, n): chunk i falls to me when i % n == place, among a crowd of n peers fetching one
    file at once (their account names): every n-th, by my place among the names. Every member that knows the same crowd draws
    the same lines without a word exchanged, in equal shares. Each asks the seed first for its own
    share of the chunks nobody holds yet, and takes the rest from the others as they get them:
    every chunk leaves the seed about once. Drawn at random instead, two downloads asked the seed
    for chunks another had just taken (it cannot know: the maps it hears are up to a second old,
    and requests in flight are not in them), and at the end all asked for the very same last ones;
    shares of unequal size (hashing) sent the ones done first after the largest share's last."""
    ordered = sorted(crowd)
    return ordered.index(me), len(ordered)


def _peer_name(label: str) -> str:
    """The peer (account) name of a source's label, 'name@host:port'."""
    return label.rsplit("@", 1)[0]
