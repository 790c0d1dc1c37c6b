"""A serving peer's transfer slots, shared fairly among the accounts that want them.

Slots went first come, first served. A `get --all` of a folder starts its next file the moment
one ends, so it took every slot that came free, while another user's `get`, refused and asking
again every ~2 s (busy_wait), waited for the whole batch: one 8 MiB file asked for 1.5 s into a
batch of 30 from a seed of 2 slots finished after the batch, at 13.8 s.

Now a free slot goes to whoever holds fewest of those asking for one, and of those to whoever
has waited longest (max-min fairness, as an eDonkey server's upload queue or BitTorrent's
unchoking share a seed): a caller refused within WAITING_SECONDS counts as asking, and a caller
behind it is refused while the slot waits for that caller's next ask. With every slot taken, a
stream of a caller holding two or more beyond the fewest of those waiting hands its slot over
after its turn (TURN_SECONDS), a Download at its next chunk, an Upload at its next file: it ends
with Busy, and its `get` or `put` asks again later and loses nothing it moved. A caller holding
at most one more than those waiting keeps its slots (no turns among equals): the one waiting
longest gets the next slot that frees.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

WAITING_SECONDS = 3.0  # a refused caller asks again within 2.5 s (busy_wait): counted as asking this long
TURN_SECONDS = 5.0  # a stream's slot is never handed over sooner (each hand-over costs its caller a stream's set-up)


@dataclass
class Turn:
    """One slot, held by caller since started (monotonic seconds)."""

    caller: str
    started: float
    given_back: bool = False


class TransferSlots:
    """At most limit transfers at once; take, yielded and give_back are thread-safe."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()
        self._waiting: dict[str, tuple[float, float]] = {}  # caller -> when it was first and last refused
        self.in_use = 0

    def take(self, caller: str) -> Turn | None:
        """A slot for caller, or None: all are taken, or another caller asking holds fewer (or
        as few, and has waited longer)."""
        with self._lock:
            now = self._clock()
            self._forget_waiting(now)
            ahead = min((self._place(name) for name in self._waiting if name != caller), default=None)
            if self.in_use < self.limit and (ahead is None or self._place(caller) < ahead):
                self._waiting.pop(caller, None)
                self._held[caller] += 1
                self.in_use += 1
                return Turn(caller, now)
            since = self._waiting.get(caller, (now, now))[0]
            self._waiting[caller] = (since, now)
            return None

    def yielded(self, turn: Turn) -> bool:
        """True, with the slot given back, when turn's caller should hand it to one waiting."""
        with self._lock:
            if turn.given_back or self.in_use < self.limit:  # a free slot: the waiting take it
                return False
            now = self._clock()
            if now - turn.started < TURN_SECONDS:
                return False
            self._forget_waiting(now)
            fewest = min((self._held[name] for name in self._waiting if name != turn.caller), default=None)
            if fewest is None or self._held[turn.caller] <= fewest + 1:  # handing over would not even them out
                return False
            self._give_back(turn)
            return True

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

    def _give_back(self, turn: Turn) -> None:
        if turn.given_back:
            return
        turn.given_back = True
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
