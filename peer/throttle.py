"""One byte rate shared by several streams: all a peer serves (--max-serve-rate), or all one `get`
receives (--max-rate), as P2P clients cap uploads and downloads.

A generic cell rate algorithm: each chunk reserves len/rate seconds of the peer's time line; a
chunk that would run more than BURST_SECONDS ahead of the clock waits until it does not. Idle
time is not saved up beyond that burst, so a peer idle for an hour does not then send at full
speed for a minute.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

BURST_SECONDS = 0.25
MIN_RATE = 64 * 1024  # below this a 1 MiB chunk would take over 16 s: a stalled stream, not a cap


class Throttle:
    """Shared by threads: take(n) says how long to wait before sending n bytes."""

    def __init__(self, bytes_per_second: int, clock: Callable[[], float] = time.monotonic):
        if bytes_per_second < MIN_RATE:
            raise ValueError(f"a rate cap must be at least {MIN_RATE} bytes/s, got {bytes_per_second}")
        self.rate = bytes_per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._busy_until = 0.0  # when everything reserved so far has been sent, at the rate

    def take(self, size: int) -> float:
        """Reserve size bytes; the seconds to wait before sending them (0 when within the burst)."""
        with self._lock:
            now = self._clock()
            self._busy_until = max(self._busy_until, now) + size / self.rate
            return max(0.0, self._busy_until - BURST_SECONDS - now)
