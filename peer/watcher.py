"""Keeping the share's index current on a thread of its own.

Scans hash in slices of a few seconds and hand what changed to the session keeper, so that
hashing a large share never delays serving, logging in or a heartbeat: a peer with a terabyte
to hash is reachable and healthy at once, and publishes its files as they are hashed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from p2p_common.wording import counted
from peer.folder_events import FolderEvents
from peer.share import SETTLE_SECONDS, Share, ShareChanges, SharedFile

log = logging.getLogger(__name__)

SCAN_SLICE_SECONDS = 2.0  # hashing between two hand-overs to the keeper
# after a folder event, for the rest of its burst: a file is indexed once it has settled
# (share.SETTLE_SECONDS) anyway, and looking sooner and more often only published more, smaller
# batches while a `get` into the share was writing
EVENTS_GATHER_SECONDS = 1.0
SCAN_SHARE = 0.1  # rescans (their walk, not hashing) may take this share of one core: a huge share is rescanned less often
# with folder events, walks are only the safety net (as Syncthing's hourly rescan is): a million
# files, walked in ~8 s, every ~7 min rather than every ~80 s, for 2% of a core rather than 10%
SCAN_SHARE_WITH_EVENTS = 0.02


class PendingChanges:
    """Share changes not yet published, merged by name; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._added: dict[str, SharedFile] = {}
        self._removed: set[str] = set()

    def add(self, changes: ShareChanges) -> None:
        with self._lock:
            for name in changes.removed:
                self._added.pop(name, None)
                self._removed.add(name)
            for shared in changes.added:
                self._removed.discard(shared.name)
                self._added[shared.name] = shared

    def restore(self, taken: ShareChanges) -> None:
        """Put back what take() gave and could not be published; what was found since wins."""
        with self._lock:
            for name in taken.removed:
                if name not in self._added:
                    self._removed.add(name)
            for shared in taken.added:
                if shared.name not in self._removed:
                    self._added.setdefault(shared.name, shared)

    def take(self) -> ShareChanges:
        """Everything pending, which is pending no more."""
        with self._lock:
            taken = ShareChanges(list(self._added.values()), sorted(self._removed))
            self._added, self._removed = {}, set()
        return taken


class Wakeable(threading.Thread):
    """A background thread of the peer that works in rounds: wake() starts the next one now,
    stop() ends it (waiting up to 10 s for the round under way)."""

    def __init__(self, name: str):
        super().__init__(name=name, daemon=True)
        self._stop_event = threading.Event()
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop_event.set()
        self._wake.set()
        self.join(timeout=10)


class ShareWatcher(Wakeable):
    """Scans the share (at once, then every rescan interval or less often, see SCAN_SHARE*) and
    queues what changed; between walks, looks at the names folder events report (FolderEvents,
    where the system has them); queues an upload that landed without a scan (landed)."""

    def __init__(self, share: Share, rescan_seconds: float, on_changes: Callable[[], None]):
        super().__init__("share-watcher")
        self._share = share
        self._rescan = rescan_seconds
        self._on_changes = on_changes
        self.pending = PendingChanges()
        self.indexed = threading.Event()  # every file of the share has been hashed once
        self._events = FolderEvents.open(self._wake.set)
        if self._events is not None:
            share.on_folder = self._events.watch
        self._recheck: dict[str, float] = {}  # files still being written, to look at again then (monotonic)

    def landed(self) -> None:
        """A file was received and indexed (Share.add_verified): publish it now."""
        changes = self._share.take_added()
        if changes:
            self.pending.add(changes)
            self._on_changes()

    def run(self) -> None:
        started_at = time.monotonic()
        next_walk = started_at
        try:
            while not self._stop_event.is_set():
                self._wake.clear()
                changed = self._events.take() if self._events is not None else set()
                if changed is None or time.monotonic() >= next_walk:  # due, or events were lost
                    if not self._walk(started_at):
                        break
                    share_of_core = SCAN_SHARE if self._events is None else SCAN_SHARE_WITH_EVENTS
                    next_walk = time.monotonic() + max(self._rescan, self._share.walk_seconds / share_of_core)
                else:
                    self._look_again(changed)
                wait = next_walk - time.monotonic()
                if self._recheck:
                    wait = min(wait, min(self._recheck.values()) - time.monotonic())
                if self._wake.wait(max(0.0, wait)) and self._events is not None:
                    self._stop_event.wait(EVENTS_GATHER_SECONDS)  # the rest of a burst (a folder copied in)
        finally:
            if self._events is not None:
                self._events.close()

    def _walk(self, started_at: float) -> bool:
        """A scan of the whole share; False once stopping."""
        try:
            changes = self._share.scan(SCAN_SLICE_SECONDS, self._hand_over)
        except Exception:
            log.exception("scanning %s failed; trying again", self._share.root)
            return not self._stop_event.wait(self._rescan)
        if not self._share.complete:  # stopped
            return False
        if changes:
            self.pending.add(changes)  # before `indexed`: the keeper reads that first
        first = not self.indexed.is_set()
        if first:
            self.indexed.set()
            left_out = self._share.left_out
            why = f" (left out {left_out}: {self._share.filter.describe()})" if left_out else ""
            log.info(
                "indexed %s of %s in %.1fs%s",
                counted(len(self._share.files()), "file"),
                self._share.root,
                time.monotonic() - started_at,
                why,
            )
        if changes or first:
            self._on_changes()
        return True

    def _look_again(self, changed: set[str]) -> None:
        """The names folder events reported, and files due to be looked at again once settled."""
        now = time.monotonic()
        due = {name for name, at in self._recheck.items() if at <= now}
        for name in due:
            del self._recheck[name]
        if not changed and not due:
            return
        try:
            changes, unsettled = self._share.rescan(changed | due, SCAN_SLICE_SECONDS, self._hand_over)
        except Exception:
            log.exception("looking again at %s failed; the next rescan will", counted(len(changed | due), "changed name"))
            return
        for name in unsettled:
            self._recheck[name] = now + SETTLE_SECONDS
        if changes:
            self.pending.add(changes)
            self._on_changes()

    def _hand_over(self, changes: ShareChanges) -> bool:
        """What a scan hashed so far, queued for publishing; False once stopping (ends the scan)."""
        self.pending.add(changes)
        self._on_changes()
        return not self._stop_event.is_set()
