"""A serving peer: the share, the PeerService server, and the session kept alive with the tracker."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from p2p_common.auth import BearerAuthInterceptor
from p2p_common.errors import P2PError, Unauthenticated
from p2p_common.server import RunningServer, Service, start_server
from peer.chunk_wire import SERVICE_NAME, add_peer_service
from peer.config import PeerConfig
from peer.service import PeerServicer, UploadPolicy
from peer.share import Share, ShareChanges, SharedFile
from peer.tracker_client import TrackerClient

log = logging.getLogger(__name__)

MAX_BACKOFF = 10.0
SCAN_SHARE = 0.1  # rescans may take this share of one core: a huge share is rescanned less often


class TicketVerifier:
    """Checks callers' tickets with the tracker, remembering good ones until they expire."""

    def __init__(self, tracker: TrackerClient):
        self._tracker = tracker
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def __call__(self, ticket: str) -> str:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(ticket)
        if hit and hit[1] > now:
            return hit[0]
        holder, ttl = self._tracker.verify_ticket(ticket)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            self._cache[ticket] = (holder, now + min(ttl, 60))  # re-check at least every minute
        return holder


@dataclass
class PeerNode:
    """Everything `p2p-peer serve` runs; stop() logs out and stops gracefully."""

    config: PeerConfig
    share: Share
    tracker: TrackerClient
    server: RunningServer
    keeper: SessionKeeper

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self, grace: float = 5.0) -> None:
        self.server.set_serving(False)
        self.keeper.stop()
        self.tracker.logout()
        self.server.stop(grace)
        self.tracker.close()
        self.share.close()


class SessionKeeper(threading.Thread):
    """Logs in, publishes the index, renews the lease and publishes share changes.

    When the tracker forgets the session or is unreachable, it logs in again with backoff and
    republishes everything, with no operator action.
    """

    def __init__(self, tracker: TrackerClient, share: Share, rescan_seconds: float, logged_in: bool = False):
        super().__init__(name="session-keeper", daemon=True)
        self._tracker = tracker
        self._share = share
        self._rescan = rescan_seconds
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._published_generation = -1
        self._need_login = not logged_in
        self._scan_seconds = 0.0  # how long the last rescan took
        self.ready = threading.Event()  # set after the first successful publish
        self.publishes = 0

    def request_publish(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop_event.set()
        self._wake.set()
        self.join(timeout=10)

    def _cycle(self, last_beat: float, scan: bool) -> float:
        """One round: rescan if asked, (re)login and full publish if needed, heartbeat when due."""
        changes = ShareChanges()
        if scan:
            started = time.monotonic()
            changes = self._share.scan()
            self._scan_seconds = time.monotonic() - started
        if self._need_login or not self._tracker.logged_in:
            self._tracker.login()
            self._need_login = False
        if self._tracker.generation != self._published_generation:
            generation = self._tracker.generation
            count = self._tracker.send_index(True, self._share.files())
            self._published_generation = generation
            self.publishes += 1
            log.info("published %d files to %s as %s", count, self._tracker.address, self._tracker.name)
            self.ready.set()
            return time.monotonic()
        if changes:
            count = self._tracker.send_index(False, changes.added, changes.removed)
            self.publishes += 1
            log.info("published %d changed, %d removed (%d files now)", len(changes.added), len(changes.removed), count)
        if time.monotonic() - last_beat >= self._tracker.lease_seconds / 3:
            self._tracker.heartbeat()
            return time.monotonic()
        return last_beat

    def run(self) -> None:
        backoff, last_beat, next_scan = 0.5, 0.0, 0.0
        while not self._stop_event.is_set():
            try:
                scan = time.monotonic() >= next_scan
                last_beat = self._cycle(last_beat, scan)
                if scan:
                    next_scan = time.monotonic() + max(self._rescan, self._scan_seconds / SCAN_SHARE)
                backoff = 0.5
                beat_due = last_beat + max(0.5, self._tracker.lease_seconds / 3)
                wait = max(0.05, min(next_scan, beat_due) - time.monotonic())
            except P2PError as exc:
                if isinstance(exc, Unauthenticated) and "wrong password" in str(exc):
                    log.error("%s (the password was changed?); retrying in a minute", exc)
                    wait = 60.0
                else:
                    log.warning("tracker: %s; retrying in %.1fs", exc, backoff)
                    wait = backoff
                self._need_login = True  # then a full publish, as the session is new
                backoff = min(MAX_BACKOFF, backoff * 2)
            except Exception:
                log.exception("session keeper failed; retrying")
                self._need_login = True
                wait = backoff
                backoff = min(MAX_BACKOFF, backoff * 2)
            if self._wake.wait(wait):
                next_scan = 0.0  # an upload landed: scan and publish now
            self._wake.clear()


def advertised_address(listen: str, port: int) -> str:
    """What others dial: the listen host with the bound port; a wildcard host becomes 127.0.0.1."""
    host = listen.rsplit(":", 1)[0]
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def _first_login(tracker: TrackerClient, server: RunningServer, share: Share) -> bool:
    """Log in once before serving: refused credentials end start-up with a clear error, while an
    unreachable tracker is only a warning (the keeper retries until it answers)."""
    try:
        tracker.login()
        return True
    except Unauthenticated:
        server.stop(0)
        share.close()
        tracker.close()
        raise
    except P2PError as exc:
        log.warning("%s; serving anyway and retrying in the background", exc)
        return False


def start_peer(config: PeerConfig) -> PeerNode:
    """Index the share, start serving, then log in and publish in the background."""
    share = Share(config.share)
    share.scan()
    tracker = TrackerClient(config.tracker, config.name, config.password)
    verifier = TicketVerifier(tracker)
    keeper_box: list[SessionKeeper] = []

    def on_new_file(_shared: SharedFile) -> None:
        if keeper_box:
            keeper_box[0].request_publish()

    servicer = PeerServicer(share, UploadPolicy(config.allow_uploads, config.max_upload_bytes), on_new_file)
    service = Service(SERVICE_NAME, lambda s: add_peer_service(servicer, s))
    auth = BearerAuthInterceptor(verifier, f"/{SERVICE_NAME}/")
    try:
        server = start_server(config.listen, [service], [auth], max_workers=config.max_workers)
    except Exception:
        share.close()
        tracker.close()
        raise
    tracker.advertise = config.advertise or advertised_address(config.listen, server.port)
    logged_in = _first_login(tracker, server, share)
    keeper = SessionKeeper(tracker, share, config.rescan_seconds, logged_in)
    keeper_box.append(keeper)
    keeper.start()
    server.set_serving(True)
    return PeerNode(config, share, tracker, server, keeper)
