"""Limits on checking passwords, so that a flood of logins cannot take the tracker down.

A password check is scrypt: ~50 ms of CPU and 16 MiB by design. Thirty-two at once would starve
every other call on a small machine, heartbeats included, and expired leases would empty the
directory. So at most a few checks run at once (a login that cannot start one within a moment is
told to retry: RESOURCE_EXHAUSTED), and whoever keeps giving wrong passwords for an account waits
longer and longer between tries (2 s, 4 s, ... up to 5 min). The waits are kept per account *and*
caller host: a guesser elsewhere cannot lock the owner out.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from p2p_common.errors import Busy, ResourceExhausted

MAX_DELAY = 300.0
TRACKED = 100_000  # (account, host) pairs remembered; the oldest are forgotten first


@dataclass
class _Failures:
    count: int
    last: float


class LoginGuard:
    """Thread-safe; the tracker has one."""

    def __init__(
        self,
        free_failures: int = 5,
        concurrent: int | None = None,
        wait_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.free_failures = free_failures
        self.wait_seconds = wait_seconds
        self._clock = clock
        self._slots = threading.BoundedSemaphore(concurrent or max(2, os.cpu_count() or 2))
        self._lock = threading.Lock()
        self._failures: OrderedDict[tuple[str, str], _Failures] = OrderedDict()
        self.refused_busy = 0  # logins told to retry: no password check could start in time
        self.refused_wrong_passwords = 0  # tries refused while a wait after wrong passwords ran

    def check_allowed(self, account: str, host: str) -> None:
        """RESOURCE_EXHAUSTED while this host must still wait before its next try at account."""
        with self._lock:
            failures = self._failures.get((account, host))
        if failures is None or failures.count < self.free_failures:
            return
        delay = min(MAX_DELAY, 2.0 ** (failures.count - self.free_failures + 1))
        left = failures.last + delay - self._clock()
        if left > 0:
            self.refused_wrong_passwords += 1
            raise ResourceExhausted(f"{failures.count} wrong passwords for {account!r} from this host; try again in {left:.0f} s")

    @contextmanager
    def hashing(self) -> Iterator[None]:
        """One password hash at a time per slot; RESOURCE_EXHAUSTED when none frees up in time."""
        if not self._slots.acquire(timeout=self.wait_seconds):
            self.refused_busy += 1
            raise Busy("the tracker is busy checking passwords; retry in a moment")
        try:
            yield
        finally:
            self._slots.release()

    def failed(self, account: str, host: str) -> None:
        with self._lock:
            key = (account, host)
            failures = self._failures.pop(key, None) or _Failures(0, 0.0)
            failures.count += 1
            failures.last = self._clock()
            self._failures[key] = failures  # now the newest
            while len(self._failures) > TRACKED:
                self._failures.popitem(last=False)

    def succeeded(self, account: str, host: str) -> None:
        with self._lock:
            self._failures.pop((account, host), None)
