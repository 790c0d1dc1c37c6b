"""A serving peer: the share, the PeerService server, and the session kept alive with the tracker."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from dataclasses import dataclass

from p2p_common.auth import BearerAuthInterceptor
from p2p_common.errors import InvalidArgument, P2PError, PermissionDenied, Unauthenticated
from p2p_common.server import RunningServer, Service, start_server
from p2p_common.tls import ClientTls, ServerTls
from p2p_common.wording import counted
from peer import sha256_chain
from peer.chunk_wire import SERVICE_NAME, add_peer_service
from peer.config import PeerConfig
from peer.service import PeerServicer, UploadPolicy
from peer.share import Share
from peer.throttle import Throttle
from peer.tracker_client import TrackerClient
from peer.watcher import ShareWatcher, Wakeable

log = logging.getLogger(__name__)

# Woken by a change (an upload landed, a scan found some), the keeper waits this long before it
# publishes: 2,000 photos uploaded at once were 2,000 SendIndex calls, not a few dozen.
GATHER_SECONDS = 0.2
MAX_BACKOFF = 10.0
REMIND_SECONDS = 300.0  # while the tracker stays away, a warning this often (each try is logged at info)


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
    watcher: ShareWatcher
    keeper: SessionKeeper

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self, grace: float = 5.0) -> None:
        self.server.set_serving(False)
        self.watcher.stop()
        self.keeper.stop()
        self.tracker.logout()
        self.server.stop(grace)
        self.tracker.close()
        self.share.close()


class SessionKeeper(Wakeable):
    """Logs in, publishes the index, renews the lease and publishes what the watcher found.

    While the tracker is unreachable it retries with backoff, keeping its session (a restarted
    tracker carries sessions on) and the changes not published yet; when the tracker has forgotten
    the session it logs in again and republishes everything; no operator action either way.
    """

    def __init__(self, tracker: TrackerClient, share: Share, watcher: ShareWatcher, logged_in: bool = False):
        super().__init__("session-keeper")
        self._tracker = tracker
        self._share = share
        self._watcher = watcher  # wakes this keeper when it has changes
        self._published_generation = -1
        self._need_login = not logged_in
        self.ready = threading.Event()  # set once the whole share's index is published
        self.publishes = 0
        self.published_files = 0  # what the tracker lists for this peer, as of the last publish
        self.failures = 0  # rounds that failed (the tracker unreachable, the session forgotten...)

    def _cycle(self, last_beat: float) -> float:
        """One round: (re)login and full publish if needed, else publish changes; heartbeat when due."""
        if self._need_login or not self._tracker.logged_in:
            self._tracker.login()
            self._need_login = False
        indexed = self._watcher.indexed.is_set()  # first: all it covers is pending or in files() below
        changes = self._watcher.pending.take()
        try:
            if self._tracker.generation != self._published_generation:
                generation = self._tracker.generation
                count = self.published_files = self._tracker.send_index(True, self._share.published())
                self._published_generation = generation
                self.publishes += 1
                log.info("published %s to %s as %s", counted(count, "file"), self._tracker.address, self._tracker.name)
                last_beat = time.monotonic()
            elif changes:
                count = self.published_files = self._tracker.send_index(False, changes.added, changes.removed)
                self.publishes += 1
                now = counted(count, "file")
                log.info("published %d changed, %d removed (%s now)", len(changes.added), len(changes.removed), now)
        except BaseException:
            self._watcher.pending.restore(changes)  # for the next round (a full publish covers them too)
            raise
        if indexed:
            self.ready.set()
        if time.monotonic() - last_beat >= self._tracker.lease_seconds / 3:
            self._tracker.heartbeat()
            return time.monotonic()
        return last_beat

    def run(self) -> None:
        backoff, last_beat = 0.5, 0.0
        failing = 0 if self._tracker.logged_in else 1  # rounds failed in a row (start-up's login counts)
        warned_at = time.monotonic() if failing else -math.inf  # start-up warned of its failed login
        while not self._stop_event.is_set():
            self._wake.clear()  # before the round: a wake during it starts the next one at once
            try:
                last_beat = self._cycle(last_beat)
                if failing:  # at the level the failures were told at: whoever saw them sees the end
                    log.warning("the tracker at %s answers after %s; %s", self._tracker.address, _tries(failing), self._where())
                failing, backoff = 0, 0.5
                wait = max(0.05, last_beat + max(0.5, self._tracker.lease_seconds / 3) - time.monotonic())
            except P2PError as exc:
                self.failures += 1
                failing += 1
                if isinstance(exc, Unauthenticated):
                    self._need_login = True  # the tracker forgot the session: a new one, a full publish
                if isinstance(exc, Unauthenticated) and "wrong password" in str(exc):
                    log.error("%s (the password was changed?); retrying in a minute", exc)
                    wait = 60.0
                elif isinstance(exc, PermissionDenied):  # the account was disabled
                    log.error("%s; retrying in a minute", exc)
                    wait = 60.0
                else:
                    # jittered: after a tracker restart, its peers do not all come back in step
                    wait = backoff * random.uniform(0.5, 1.0)
                    # an outage is a warning when it starts and every REMIND_SECONDS, not every try
                    remind = time.monotonic() - warned_at >= REMIND_SECONDS
                    warned_at = time.monotonic() if failing == 1 or remind else warned_at
                    level = logging.WARNING if failing == 1 or remind else logging.INFO
                    log.log(level, "tracker: %s; %s so far, retrying in %.1fs", exc, _tries(failing), wait)
                backoff = min(MAX_BACKOFF, backoff * 2)
            except Exception:
                self.failures += 1
                failing += 1
                log.exception("session keeper failed; retrying")
                self._need_login = True
                wait = backoff * random.uniform(0.5, 1.0)
                backoff = min(MAX_BACKOFF, backoff * 2)
            if failing:  # changes wait for the backoff: a busy share would make every rescan a try
                self._stop_event.wait(wait)
            elif self._wake.wait(wait):  # changes: those close behind go in the same SendIndex
                self._stop_event.wait(GATHER_SECONDS)

    def _where(self) -> str:
        listed = self._tracker.listed_as
        return f"listed as {listed}, {counted(self.published_files, 'file')} published" if listed else "not listed as a source"


def _tries(count: int) -> str:
    return f"{count} failed {'try' if count == 1 else 'tries'}"


def advertised_address(listen: str, port: int) -> str:
    """What others dial: the listen host with the bound port. Listening on every interface, a peer
    cannot tell which of its addresses others reach it by (a LAN's, a container network's, behind a
    NAT): ":port" has the tracker list the host it sees the login come from."""
    host = listen.rsplit(":", 1)[0]
    if host in ("", "0.0.0.0", "[::]", "::"):
        return f":{port}"
    return f"{host}:{port}"


def _first_login(tracker: TrackerClient, server: RunningServer, share: Share) -> bool:
    """Log in once before serving: refused credentials or a refused address end start-up with a
    clear error, while an unreachable tracker is only a warning (the keeper retries until it answers)."""
    try:
        tracker.login()
        return True
    except (Unauthenticated, PermissionDenied, InvalidArgument):  # asking again would not mend it
        server.stop(0)
        share.close()
        tracker.close()
        raise
    except P2PError as exc:
        log.warning("%s; serving anyway and retrying in the background", exc)
        return False


def start_peer(config: PeerConfig) -> PeerNode:
    """Start serving at once, then index the share, log in and publish in the background."""
    sha256_chain.check_available()  # a peer that cannot hash its share says so now, in one line
    server_tls, client_tls = ServerTls.load(config.tls_cert, config.tls_key), ClientTls.load(config.tls_ca)
    share = Share(config.share, keep_partial_seconds=config.keep_partial_seconds, share_filter=config.share_filter)
    try:
        share.claim_for_serving()
    except (P2PError, OSError):
        share.close()
        raise
    tracker = TrackerClient(config.tracker, config.name, config.password, tls=client_tls)
    verifier = TicketVerifier(tracker)
    watcher = ShareWatcher(share, config.rescan_seconds, lambda: keeper.wake())  # started once keeper is
    policy = UploadPolicy(config.allow_uploads, config.max_upload_bytes)
    throttle = Throttle(config.max_serve_rate) if config.max_serve_rate else None
    servicer = PeerServicer(
        share, policy, lambda _shared: watcher.landed(), max_transfers=config.max_transfers, throttle=throttle
    )
    service = Service(SERVICE_NAME, lambda s: add_peer_service(servicer, s))
    auth = BearerAuthInterceptor(verifier, f"/{SERVICE_NAME}/")
    try:
        server = start_server(
            config.listen,
            [service],
            [auth],
            max_workers=config.max_workers,
            tls=server_tls,
            keepalive_seconds=config.keepalive_seconds,
        )
    except Exception:
        share.close()
        tracker.close()
        raise
    tracker.advertise = config.advertise or advertised_address(config.listen, server.port)
    logged_in = _first_login(tracker, server, share)
    keeper = SessionKeeper(tracker, share, watcher, logged_in)
    keeper.start()
    watcher.start()
    server.set_serving(True)
    return PeerNode(config, share, tracker, server, watcher, keeper)
