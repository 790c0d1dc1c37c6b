"""A clock for stall timeouts that stops while this process does not run.

A peer that owes a chunk and sends nothing for a minute is cut off. But when this process itself
was not running (Ctrl-Z and `fg` minutes later, SIGSTOP, a debugger, a paused VM), the silence
was ours: every source looked silent, and a download resumed after a long pause failed at once
with "sent nothing for 60 s". This clock leaves such gaps out.

A gap is seen, not guessed: its owner reads it every fraction of a second while it waits, so two
readings more than SUSPENDED_SECONDS apart mean nobody in this process ran in between.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Readings further apart than this (they are ~0.1 s apart while the process runs) are a time this
# process did not run. Shorter pauses count as silence, as they always did.
SUSPENDED_SECONDS = 1.0


class RunClock:
    """Monotonic seconds, less the times this process was stopped. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()
        self._stopped = 0.0  # seconds left out so far

    def now(self) -> float:
        with self._lock:
            real = self._clock()
            if real - self._last > SUSPENDED_SECONDS:
                self._stopped += real - self._last
            self._last = real
            return real - self._stopped
