"""The directory's rules: accounts, sessions and leases, tickets, index validation, queries."""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from p2p_common.errors import (
    AlreadyExists,
    Busy,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from p2p_common.names import MIN_SHA256_PREFIX, is_sha256_hex, is_sha256_prefix, name_problem
from tracker import auth
from tracker import store as st
from tracker.config import TrackerConfig
from tracker.login_guard import LoginGuard
from tracker.reachability import Prober
from tracker.steady_clock import SteadyWallClock

log = logging.getLogger(__name__)
T = TypeVar("T")

ACCOUNT_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_PASSWORD = 1024
MAX_ADDRESS = 255
MIN_CHUNK, MAX_CHUNK = 64 * 1024, 4 * 1024 * 1024
MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 1000, 100
MAX_PATTERN = 1024
STATS_MAX_AGE = 10.0
_ADDRESS = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})")


@dataclass(frozen=True)
class LoginResult:
    token: str
    registered: bool
    address: str  # what Query lists the session under ('' for a client-only one)
    reachability_problem: str = ""  # why the tracker could not connect to address ('' if it could, or did not try)


def check_account_name(name: str) -> None:
    if not ACCOUNT_NAME.fullmatch(name):
        raise InvalidArgument(f"account name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")


def check_credentials(name: str, password: str) -> None:
    check_account_name(name)
    if not 1 <= len(password) <= MAX_PASSWORD:
        raise InvalidArgument(f"password must be 1-{MAX_PASSWORD} characters")


def _checked(entry: st.FileRecord) -> st.FileRecord:
    """entry, when it is a well-formed index entry; else INVALID_ARGUMENT naming it."""
    problem = name_problem(entry.name)
    if problem:
        raise InvalidArgument(f"file {entry.name!r}: name {problem}")
    if entry.size < 0:
        raise InvalidArgument(f"file {entry.name!r}: size must not be negative")
    if not is_sha256_hex(entry.sha256):
        raise InvalidArgument(f"file {entry.name!r}: sha256 must be 64 lowercase hex digits")
    if not is_sha256_hex(entry.chunk_list_sha256):
        raise InvalidArgument(f"file {entry.name!r}: chunk_list_sha256 must be 64 lowercase hex digits")
    size = entry.chunk_size
    if not (MIN_CHUNK <= size <= MAX_CHUNK and size & (size - 1) == 0):
        raise InvalidArgument(f"file {entry.name!r}: chunk_size must be a power of two from 64 KiB to 4 MiB")
    return entry


def listed_address(address: str, caller_ip: str) -> str:
    """The address a serving session is listed under: as given, or for ":port" the caller's host.
    INVALID_ARGUMENT for one that is malformed, or that no other host could dial (a loopback
    address given by a caller on another host: every downloader would dial itself)."""
    if address.startswith(":"):
        if not caller_ip:
            raise InvalidArgument(f"address {address!r} needs the host this login came from, unknown here; give host:port")
        address = caller_ip + address
    if not address:
        return ""
    parts = _ADDRESS.fullmatch(address) if len(address) <= MAX_ADDRESS else None
    if parts is None or not 1 <= int(parts[2]) <= 65535:
        raise InvalidArgument(f"address {address!r} must be host:port")
    host, port = parts[1], parts[2]
    if _is_loopback(host) and caller_ip and not _is_loopback(caller_ip):
        raise InvalidArgument(
            f"address {address!r} is a loopback address, which only {caller_ip} itself can dial; advertise one that"
            f" other hosts reach, or ':{port}' to be listed as {caller_ip}:{port}"
        )
    return address


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Directory:
    """Applies the rules over a Store; raises P2PError subclasses for every bad request."""

    def __init__(self, store: st.Store, config: TrackerConfig, clock: Callable[[], float] | None = None):
        self.store = store
        self.config = config
        self.clock = clock or SteadyWallClock()  # wall time that steps of the system clock leave alone
        self._tickets = auth.TicketSigner(store.secret("ticket-hmac", 32))
        self.login_guard = LoginGuard(free_failures=config.free_failed_logins)
        self.prober = Prober(config.probe_seconds) if config.probe_seconds else None
        self.started = time.monotonic()
        self._stats: tuple[float, st.StoreStats] | None = None  # (when counted, what)
        self._stats_lock = threading.Lock()
        # set by every published index: the Reaper then tidies the store at once, rather than at
        # its next round (until the new names are indexed, every query also scans them)
        self.index_changed = threading.Event()

    # -- accounts and sessions ---------------------------------------------------------
    def add_account(self, name: str, password: str) -> None:
        check_credentials(name, password)
        try:
            self.store.add_account(name, auth.hash_password(password))
        except st.AlreadyExists as exc:
            raise AlreadyExists(str(exc)) from exc

    def set_password(self, name: str, password: str) -> int:
        """Also ends the account's sessions (how many is returned): a password is changed when it
        leaked, and a session opened with it would otherwise live on, renewed, for ever."""
        check_credentials(name, password)
        try:
            return self.store.set_password(name, auth.hash_password(password))
        except st.NotFound as exc:
            raise NotFound(str(exc)) from exc

    def login(self, name: str, password: str, address: str, caller_host: str = "", caller_ip: str = "") -> LoginResult:
        """caller_host keys the wrong-password waits (the caller, not its port); caller_ip
        ('10.0.0.7', '[::1]') fills in an address given as ':port'."""
        check_credentials(name, password)
        address = listed_address(address, caller_ip)
        self.login_guard.check_allowed(name, caller_host)
        account = self.store.account(name)
        registered = False
        if account is None:
            if not self.config.open_registration:
                raise Unauthenticated(f"unknown account {name!r} (registration is closed)")
            try:
                with self.login_guard.hashing():
                    self.add_account(name, password)
                registered = True
            except AlreadyExists:
                pass  # registered by a concurrent login; check the password below
            account = self.store.account(name)
        if account is None:
            raise Unauthenticated(f"unknown account {name!r}")  # deleted meanwhile
        if not registered:
            with self.login_guard.hashing():
                right = auth.check_password(password, account.password_hash)
            if not right:
                self.login_guard.failed(name, caller_host)
                raise Unauthenticated(f"wrong password for {name!r}")
        self.login_guard.succeeded(name, caller_host)
        if account.disabled:  # told only to whoever knows the password
            raise PermissionDenied(f"account {name!r} is disabled by the tracker's operator")
        token = auth.new_token()
        now = self.clock()
        self.store.open_session(name, auth.token_hash(token), address, now + self.config.lease_seconds, now)
        problem = self.prober.at_login(address) if self.prober and address else ""
        unreachable = f" unreachable: {problem}" if problem else ""
        log.info("login %s address=%s registered=%s%s", name, address or "-", registered, unreachable)
        return LoginResult(token, registered, address, problem)

    def authenticate(self, token: str) -> st.Session:
        """The live session of token (used by the auth interceptor)."""
        session = self.store.session_by_token(auth.token_hash(token), self.clock())
        if session is None:
            raise Unauthenticated("session token is unknown or expired; log in again")
        return session

    def heartbeat(self, session: st.Session) -> tuple[int, str]:
        """The lease renewed, and why the tracker could not connect to the session's address, if
        its last try failed (a try that outlasted the login ends meanwhile)."""
        if not self.store.renew_session(session.token_hash, self.clock() + self.config.lease_seconds):
            raise Unauthenticated("session expired; log in again")
        return self.config.lease_seconds, self.reachability(session.address)

    def renewed_while(self, session: st.Session, items: Iterable[T]) -> Iterator[T]:
        """items, the session's lease renewed as often as its peer would while they come: a peer
        sending its index cannot send a heartbeat meanwhile, and a large one over a slow link
        outlasts a lease (a million entries are ~200 MB: ~3 min at 10 Mbit/s)."""
        due = self.clock() + self.config.lease_seconds / 3
        for item in items:
            if self.clock() >= due:
                self.heartbeat(session)
                due = self.clock() + self.config.lease_seconds / 3
            yield item

    def reachability(self, address: str) -> str:
        """Why the last finished try to connect to address failed ("" if it did not, or none was made)."""
        return self.prober.last(address) if self.prober and address else ""

    def logout(self, session: st.Session) -> None:
        self.store.close_session(session.token_hash)
        self.index_changed.set()  # the reaper deletes its files
        log.info("logout %s", session.account)

    def expire(self) -> int:
        return self.store.expire_sessions(self.clock())

    def resume_sessions(self) -> int:
        """At start: the sessions the tracker held when it stopped get a fresh lease.

        Their peers could not renew while the tracker was down; expiring them for that would
        make every peer log in (a scrypt each: minutes for thousands) and republish (the names all
        indexed anew). Peers that are really gone expire a lease later, as usual. Stored sessions
        are those alive at the reaper's last round (it deletes the expired every few seconds). The
        grace covers the peers' reconnection: their backoff, and their channels', is up to 10 s each.
        Leases that end later than that were given before the wall clock was set back: cut to it."""
        return self.store.resume_sessions(self.clock() + self.config.lease_seconds + self.config.resume_grace_seconds)

    # -- tickets -----------------------------------------------------------------------
    def issue_ticket(self, session: st.Session, audience: str) -> tuple[str, int]:
        check_account_name(audience)
        ttl = self.config.ticket_seconds
        ticket = auth.Ticket(session.token_hash, audience, self.clock() + ttl)
        return self._tickets.sign(ticket), ttl

    def verify_ticket(self, verifier: st.Session, text: str) -> tuple[str, int]:
        ticket = self._tickets.open(text)
        now = self.clock()
        if ticket is None:
            raise Unauthenticated("ticket is malformed or not signed by this tracker")
        if ticket.expires_at <= now:
            raise Unauthenticated("ticket expired")
        if ticket.audience != verifier.account:
            raise Unauthenticated(f"ticket is for {ticket.audience!r}, not {verifier.account!r}")
        holder = self.store.session_by_token(ticket.token_hash, now)
        if holder is None:
            raise Unauthenticated("ticket holder's session is no longer live")
        return holder.account, int(min(ticket.expires_at, holder.expires_at) - now)

    # -- index -------------------------------------------------------------------------
    def publish(self, session: st.Session, replace: bool, add: Iterable[st.FileRecord], remove: list[str]) -> int:
        """Apply an index whole or not at all; a replacement is checked entry by entry as the
        store takes it, so add may be a stream of any length."""
        if not session.address:
            raise FailedPrecondition("this session is client-only (no address); log in with an address to share files")
        for name in remove:
            problem = name_problem(name)
            if problem:
                raise InvalidArgument(f"remove {name!r}: name {problem}")
        if replace and remove:
            raise InvalidArgument("remove must be empty with INDEX_MODE_REPLACE")
        cap = self.config.max_files_per_session
        try:
            if replace:
                return self.store.replace_index(session.token_hash, map(_checked, add), cap)
            return self.store.update_index(session.token_hash, [_checked(entry) for entry in add], remove, cap)
        except st.TooManyFiles as exc:
            raise ResourceExhausted(f"a peer may publish at most {cap} files; this index would hold {exc.count}") from None
        except st.ListedTwice as exc:
            raise InvalidArgument(f"file {exc.name!r}: listed twice") from None
        except st.SessionEnded:
            raise Unauthenticated("the session ended while its index was stored; log in again") from None
        finally:
            self.index_changed.set()

    def query(self, pattern: str, sha256: str, page_size: int, page_token: str, peer: str = "") -> tuple[list[st.Match], str]:
        if peer:
            check_account_name(peer)
        if len(pattern) > MAX_PATTERN or any(ord(c) < 0x20 for c in pattern):
            raise InvalidArgument(f"name_pattern must be at most {MAX_PATTERN} printable characters")
        if sha256 and not is_sha256_prefix(sha256):
            raise InvalidArgument(f"sha256 must be 64 lowercase hex digits, or the first {MIN_SHA256_PREFIX} or more of them")
        if page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be at most {MAX_PAGE_SIZE}")
        limit = page_size or DEFAULT_PAGE_SIZE
        after = _decode_page_token(page_token)
        glob = any(c in pattern for c in "*?[")
        if glob and _has_unclosed_class(pattern):
            raise InvalidArgument("name_pattern has a '[' that no ']' closes (a literal '[' is written [[])")
        q = st.Query(name_pattern=pattern, glob=glob, sha256=sha256, after_sha256=after, limit=limit, peer=peer)
        try:
            matches = self.store.query(q, self.clock())
        except st.TooBroad as exc:
            raise ResourceExhausted(f"{exc}; add letters or words to narrow it down") from None
        except st.QueryStarved as exc:
            raise Busy(f"{exc}: the tracker is busy; try again in a moment") from None
        next_token = page_token_after(matches[-1].sha256) if len(matches) == limit else ""
        return matches, next_token

    def stats(self) -> st.StoreStats:
        """The store's figures, counted at most STATS_MAX_AGE seconds ago (counting the distinct
        contents walks an index: an operator's polling must not cost the tracker)."""
        with self._stats_lock:
            if self._stats is None or time.monotonic() - self._stats[0] > STATS_MAX_AGE:
                self._stats = (time.monotonic(), self.store.stats(self.clock()))
            return self._stats[1]

    def peers(self, name: str = "", page_size: int = 0, page_token: str = "") -> tuple[list[st.PeerInfo], str]:
        """A page of the serving peers (name's places only, if given) and the next page's token."""
        if page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be at most {MAX_PAGE_SIZE}")
        limit = page_size or MAX_PAGE_SIZE
        peers = self.store.live_peers(self.clock(), name, _decode_peers_token(page_token), limit)
        return peers, (_peers_token_after(peers[-1]) if len(peers) == limit else "")


def _has_unclosed_class(pattern: str) -> bool:
    """A glob character class without its ']' (SQLite's GLOB then matches nothing, silently)."""
    i = pattern.find("[")
    while i >= 0:
        j = i + 1
        j += pattern.startswith("^", j)
        j += pattern.startswith("]", j)  # a ']' right after '[' or '[^' is a member, not the end
        end = pattern.find("]", j)
        if end < 0:
            return True
        i = pattern.find("[", end + 1)
    return False


def page_token_after(last_sha256: str) -> str:
    """The page token of the page that starts after the content last_sha256."""
    return base64.urlsafe_b64encode(f"v1:{last_sha256}".encode()).decode()


def _peers_token_after(last: st.PeerInfo) -> str:
    """The ListPeers page token of the page that starts after the peer last (name, address)."""
    return base64.urlsafe_b64encode(json.dumps([last.name, last.address]).encode()).decode()


def _decode_peers_token(token: str) -> tuple[str, str]:
    if not token:
        return "", ""
    try:
        account, address = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        raise InvalidArgument("page_token is not one this tracker issued") from None
    return str(account), str(address)


def _decode_page_token(token: str) -> str:
    if not token:
        return ""
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    if not text.startswith("v1:") or not is_sha256_hex(text[3:]):
        raise InvalidArgument("page_token is not one this tracker issued")
    return text[3:]


class Reaper(threading.Thread):
    """Ends expired sessions every few seconds (queries already skip them) and has the store
    delete the files of ended ones, a slice at a time.

    Between rounds, and at once when an index was published, it also lets the store tidy itself
    (index new names, checkpoint), a bounded slice at a time.
    """

    def __init__(self, directory: Directory, interval: float):
        super().__init__(name="reaper", daemon=True)
        self._directory = directory
        self._interval = interval
        self._stopping = threading.Event()

    def run(self) -> None:
        changed = self._directory.index_changed
        while not self._stopping.is_set():
            changed.wait(self._interval)
            changed.clear()
            if self._stopping.is_set():
                return
            try:
                removed = self._directory.expire()
                if removed:
                    log.info("expired %d sessions", removed)
                started = time.monotonic()
                while self._directory.store.maintain(0.1) and not self._stopping.wait(0.05):
                    pass  # short slices, so that writers never wait long
                if time.monotonic() - started > 1:
                    log.info("store upkeep took %.1f s", time.monotonic() - started)
            except (st.StorageFull, st.StorageFailed):
                pass  # the store logged it; the next round tries again
            except Exception:
                log.exception("expiring sessions failed")

    def stop(self) -> None:
        self._stopping.set()
        self._directory.index_changed.set()
