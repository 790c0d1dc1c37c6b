"""A cut-off for a peer that goes silent mid-transfer: a frozen peer, or a network gone without
a reset, never fails its stream (TCP would retry for a quarter of an hour)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from peer.run_clock import RunClock


class StallWatch:
    """Calls cancel once a wait marked with waiting() has lasted stall_seconds. Time this process
    did not run (stopped, the machine asleep) does not count: the silence must be the peer's."""

    def __init__(self, stall_seconds: float, clock: RunClock | None = None):
        self.stall_seconds = stall_seconds
        self.fired = False
        self._clock = clock or RunClock()
        self._since: float | None = None  # waiting on the peer since
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Around one wait on the peer (its next message, or room to send it one)."""
        self._since = self._clock.now()
        try:
            yield
        finally:
            self._since = None

    def overdue(self) -> bool:
        since = self._since
        return since is not None and self._clock.now() - since > self.stall_seconds

    def watch(self, cancel: Callable[[], object]) -> None:
        """Check on a thread of its own until stop()."""

        def run() -> None:
            while not self._done.wait(min(0.5, self.stall_seconds / 4)):
                if self.overdue():
                    self.fired = True
                    cancel()
                    return

        self._thread = threading.Thread(target=run, name="stall-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the watch; returns once its thread ended (at once: it waits on this event)."""
        self._done.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
