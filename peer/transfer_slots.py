"""A serving peer's transfer slots, shared fairly among the accounts that want them, in turns.

A free slot goes to whoever holds fewest of those asking for one, and of those to whoever has
waited longest (max-min fairness, as an eDonkey server's upload queue or BitTorrent's unchoking
share a seed): a `get --all` of a folder, which starts its next file the moment one ends, no
longer takes every slot that frees while another user waits.

With every slot taken, slots change hands in turns. A stream of a caller holding more slots than
one waiting hands its slot over once it has streamed its turn, a Download at its next chunk, an
Upload at its next file: it ends with Busy, and its `get` or `put` asks again and loses nothing it
moved. The turn is TURN_SECONDS when the caller holds two or more beyond the waiting one, and the
longer EVEN_TURN_SECONDS when one more (the two then hold as many, and go on taking turns).
Without turns among equals, the 17th user of a seed of 16 slots waited for one of the others'
downloads to end: for a 4 GiB image at 20 MiB/s shared 16 ways, nearly an hour, and its `get`
gave up after 10 minutes.

Every refusal says when to ask again (Refused.retry_after): when the next turn this caller could
take ends, so that a slot handed over stands free only briefly, but never later than
LATEST_ASK_SECONDS, as a slot also frees whenever a transfer ends. A refused caller counts as
asking for WAITING_SECONDS; one that stops asking (it found the file elsewhere) holds a free slot
back that long at most.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

TURN_SECONDS = 5.0  # a stream's slot is never handed over sooner (each hand-over costs its caller a stream's set-up)
EVEN_TURN_SECONDS = 10.0  # a turn among callers left holding as many (as often as BitTorrent rechokes)
KEPT_ASK_SECONDS = 1.0  # when to ask again while the free slot is kept for a caller ahead
SOONEST_ASK_SECONDS = 0.5  # never told sooner: a turn that is over ends at its stream's next chunk or file
OVERDUE_SECONDS = 1.0  # a turn over for longer is not about to end (an Upload mid-file, a stream asking nothing)
LATEST_ASK_SECONDS = 2.0  # never told later: a slot frees whenever some transfer ends, unforeseen
WAITING_SECONDS = 3.0  # a refused caller counts as asking this long (it asks again within 2.4 s: busy_wait adds up to 20%)


@dataclass(eq=False)  # each turn is itself (kept in a set by identity), however alike two are
class Turn:
    """One slot, held by caller since started (monotonic seconds)."""

    caller: str
    started: float
    given_back: bool = False


@dataclass(frozen=True)
class Refused:
    """No slot for now, and when to ask again (seconds)."""

    all_taken: bool  # every slot is in use (else the free one is kept for a caller ahead)
    retry_after: float
    place: int  # in line for the next free slot: 1 is next (as an eDonkey server's queue rank)


class TransferSlots:
    """At most limit transfers at once; take, yielded and give_back are thread-safe."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()
        self._turns: set[Turn] = set()
        self._waiting: dict[str, tuple[float, float]] = {}  # caller -> when it was first and last refused
        self.in_use = 0

    def take(self, caller: str) -> Turn | Refused:
        """A slot for caller, or why not: all are taken, or another caller asking holds fewer
        (or as few, and has waited longer)."""
        with self._lock:
            now = self._clock()
            self._forget_waiting(now)
            ahead = min((self._place(name) for name in self._waiting if name != caller), default=None)
            if self.in_use < self.limit and (ahead is None or self._place(caller) < ahead):
                self._waiting.pop(caller, None)
                self._held[caller] += 1
                self.in_use += 1
                turn = Turn(caller, now)
                self._turns.add(turn)
                return turn
            return self._refuse(caller, now)

    def yielded(self, turn: Turn) -> Refused | None:
        """The refusal turn's caller now gets, with its slot given back, once its turn is over
        and a caller waiting would take the slot; None while it keeps the slot."""
        with self._lock:
            if turn.given_back or self.in_use < self.limit:  # a free slot: the waiting take it
                return None
            now = self._clock()
            self._forget_waiting(now)
            fewest = min((self._held[name] for name in self._waiting if name != turn.caller), default=None)
            length = None if fewest is None else self._turn_length(turn.caller, fewest)
            if length is None or now - turn.started < length:
                return None
            self._give_back(turn)
            return self._refuse(turn.caller, now)

    def give_back(self, turn: Turn) -> None:
        with self._lock:
            self._give_back(turn)

    def waiting(self) -> int:
        """How many callers ask for a slot now (were refused within WAITING_SECONDS)."""
        with self._lock:
            self._forget_waiting(self._clock())
            return len(self._waiting)

    def held_by(self, caller: str) -> int:
        with self._lock:
            return self._held[caller]

    def _refuse(self, caller: str, now: float) -> Refused:
        """caller counts as asking from now (or since it first was), told when to ask again."""
        since = self._waiting.get(caller, (now, now))[0]
        self._waiting[caller] = (since, now)
        mine = self._place(caller)
        place = 1 + sum(1 for name in self._waiting if self._place(name) < mine)
        return Refused(self.in_use >= self.limit, self._retry_after(caller, now), place)

    def _retry_after(self, caller: str, now: float) -> float:
        """Seconds until the next turn caller could take ends, within SOONEST_ASK_SECONDS and
        LATEST_ASK_SECONDS; KEPT_ASK_SECONDS while a free slot is kept for another."""
        if self.in_use < self.limit:
            return KEPT_ASK_SECONDS
        mine = self._held[caller]
        ends = [
            end
            for turn in self._turns
            if turn.caller != caller
            and (length := self._turn_length(turn.caller, mine)) is not None
            and (end := turn.started + length) > now - OVERDUE_SECONDS
        ]
        return min(max(min(ends, default=math.inf) - now, SOONEST_ASK_SECONDS), LATEST_ASK_SECONDS)

    def _turn_length(self, holder: str, waiter_holds: int) -> float | None:
        """How long a turn of holder lasts while a caller holding waiter_holds waits; None: it
        keeps the slot (handing it over would not even them out)."""
        beyond = self._held[holder] - waiter_holds
        if beyond >= 2:
            return TURN_SECONDS
        return EVEN_TURN_SECONDS if beyond == 1 else None

    def _give_back(self, turn: Turn) -> None:
        if turn.given_back:
            return
        turn.given_back = True
        self._turns.discard(turn)
        self.in_use -= 1
        self._held[turn.caller] -= 1
        if not self._held[turn.caller]:
            del self._held[turn.caller]

    def _place(self, caller: str) -> tuple[int, float, str]:
        """Who goes first for a free slot: fewest held, then longest waiting (never refused: last)."""
        return self._held[caller], self._waiting.get(caller, (math.inf,))[0], caller

    def _forget_waiting(self, now: float) -> None:
        """Callers that have not asked within WAITING_SECONDS have stopped asking."""
        for name, (_, last) in list(self._waiting.items()):
            if now - last > WAITING_SECONDS:
                del self._waiting[name]
