"""The tracker's clock for leases and tickets: wall-clock seconds that never jump."""

from __future__ import annotations

import time


class SteadyWallClock:
    """The wall time when made, advanced by the monotonic clock from then on.

    Leases and tickets are stored as wall times, as they outlive a restart, but within a run they
    are measured on this clock. On the wall clock itself, an NTP step or an operator's `date -s` an
    hour back would keep every peer that died meanwhile listed for that hour, and an hour forward
    would end every session at once (every peer logging in again: a scrypt each)."""

    def __init__(self) -> None:
        self._origin = time.time() - time.monotonic()

    def __call__(self) -> float:
        return self._origin + time.monotonic()
