"""How long to wait before asking again a peer (or the tracker) that refused for now (Busy).

A peer serving as many transfers as it allows refuses a new stream with a retry-after-ms trailer.
Dropped at once, the downloads of a flash crowd past a seed's --max-transfers (a class fetching
the lecture) failed with "try again shortly"; waiting, they start as slots free up, and meanwhile
take what the others already hold. Six `get`s at once of 64 MiB from a seed of 2 slots serving
64 MiB/s: all done after 7.8 s (6 s of sending); with waits growing to 8 s, 10.4 s (slots stood
free meanwhile).

The trailer says when the next turn this caller could take ends (transfer_slots): that is when it
asks again, a little later rather than sooner (up to 20%: a crowd told one time does not knock at
once). A source whose connection broke says nothing: it is asked again after 1 s, then every 2 s.
"""

from __future__ import annotations

import random
import time

BUSY_RETRY_SECONDS = 1.0  # the first wait, when the failure did not say
BUSY_RETRY_MAX_SECONDS = 2.0  # the waits after it
BUSY_GIVE_UP_SECONDS = 600.0  # refused this long in a row: given up on


class BusyWait:
    """The waits after the refusals (or failures) in a row of one peer: as each refusal says, or
    else 1 s, then every 2 s, each +-25% (a crowd refused together does not knock again together),
    until give_up_seconds have passed."""

    def __init__(self, give_up_seconds: float | None = None):
        self.since = time.monotonic()
        self.give_up_seconds = BUSY_GIVE_UP_SECONDS if give_up_seconds is None else give_up_seconds
        self._delay = 0.0

    def next(self, told: float | None = None) -> float | None:
        """Seconds to wait before asking again, after a refusal that told when (seconds) or not;
        None once refused for longer than give_up_seconds."""
        if time.monotonic() - self.since > self.give_up_seconds:
            return None
        if told is not None:
            return told * random.uniform(1.0, 1.2)
        self._delay = min(2 * self._delay, BUSY_RETRY_MAX_SECONDS) if self._delay else BUSY_RETRY_SECONDS
        return self._delay * random.uniform(0.75, 1.25)
