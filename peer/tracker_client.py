"""The peer's view of the tracker: a session, index publishing, queries and peer tickets."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import grpc

from p2p.v1 import tracker_pb2 as pb
from p2p.v1 import tracker_pb2_grpc as pb_grpc
from p2p_common.auth import Metadata, bearer_metadata
from p2p_common.errors import Busy, P2PError, Unauthenticated, Unavailable, as_p2p_error, describe_rpc_error
from p2p_common.options import GRPC_OPTIONS
from p2p_common.tls import ClientTls, open_channel
from peer.busy_wait import BusyWait
from peer.share import SharedFile

log = logging.getLogger(__name__)

T = TypeVar("T")
INDEX_BATCH = 5000  # entries per SendIndex message: ~1 MiB, far below the 4 MiB message limit
# Entries per INDEX_MODE_UPDATE stream (the tracker takes at most 100,000). The tracker applies
# each in one write transaction: at a million files, other peers' heartbeats waited up to 1.1-2.3 s
# for streams of 50,000, 0.8 s for streams of 20,000, in about the same time in all.
UPDATE_ENTRIES = 20_000
CALL_TIMEOUT = 30.0
BUSY_SECONDS = 30.0  # how long a call waits for a tracker busy with other work (checking passwords, storing an index)


@dataclass(frozen=True)
class Source:
    """A live peer holding some content."""

    peer_name: str
    address: str
    name: str
    partial: bool = False  # holds only some chunks so far (still downloading it)


@dataclass(frozen=True)
class RemoteFile:
    """A content found on the tracker."""

    sha256: str
    name: str
    size: int
    chunk_size: int
    chunk_list_sha256: str
    sources: tuple[Source, ...]
    matched_names: tuple[str, ...] = ()  # when shared under several names: those matching the query


@dataclass(frozen=True)
class OnlinePeer:
    name: str
    address: str
    file_count: int
    reachability_problem: str = ""  # why the tracker could not connect to address, if it could not


def _remote_file(m: pb.FileMatch) -> RemoteFile:
    sources = tuple(Source(s.peer_name, s.address, s.name, s.partial) for s in m.sources)
    return RemoteFile(m.sha256, m.name, m.size, m.chunk_size, m.chunk_list_sha256, sources, tuple(m.matched_names))


def _entry(f: SharedFile) -> pb.FileEntry:
    m = f.manifest
    return pb.FileEntry(
        name=f.name,
        size=m.size,
        sha256=m.sha256,
        chunk_size=m.chunk_size,
        chunk_list_sha256=m.chunk_list_sha256,
        partial=f.partial,
    )


class TrackerClient:
    """One account's session with the tracker; re-logs in once when the session is gone."""

    def __init__(self, address: str, name: str, password: str, advertise: str = "", tls: ClientTls | None = None):
        self.address = address
        self.name = name
        self._password = password
        self.advertise = advertise  # host:port others dial, or ":port" for the host the tracker sees
        self.listed_as = ""  # the address the tracker lists this session under
        self.reachability_problem = ""  # why the tracker could not connect to listed_as at login (tracker.reachability)
        self.tls = tls  # how this client dials: the tracker, and the peers it fetches from
        self._channel = open_channel(address, tls, GRPC_OPTIONS)
        self._stub = pb_grpc.TrackerServiceStub(self._channel)
        self._token = ""
        self.lease_seconds = 0
        self._lock = threading.Lock()
        self._tickets: dict[str, tuple[str, float]] = {}
        self.generation = 0  # counts logins, so a session keeper notices a re-login it did not do
        self._kept_alive: threading.Event | None = None  # set to stop keep_alive's thread

    def _call(self, what: str, fn: Callable[[Metadata], T], relogin: bool = True) -> T:
        """fn's reply (asked while busy, see _while_busy), logged in again once if the tracker forgot the session."""
        try:
            return self._while_busy(what, lambda: fn(bearer_metadata(self._token)))
        except Unauthenticated:
            if not (relogin and self._token):
                raise
        self.login()
        return self._call(what, fn, relogin=False)

    @staticmethod
    def _while_busy(what: str, call: Callable[[], T]) -> T:
        """call's reply, asked again when each refusal says (about every second) for up to
        BUSY_SECONDS while the tracker refuses as busy (Busy); any other failure as the P2PError
        it stands for."""
        wait = BusyWait(BUSY_SECONDS)
        while True:
            try:
                return call()
            except grpc.RpcError as exc:
                error = as_p2p_error(exc, what)
                if not isinstance(error, Busy) or (seconds := wait.next(error.retry_after)) is None:
                    raise error from None
            time.sleep(seconds)

    # -- session -------------------------------------------------------------------------
    def login(self) -> bool:
        """Open a session (a serving one when advertise is set); True when it registered the account.

        A tracker busy checking other passwords (a lab logging in at once) is asked again about
        every second for up to BUSY_SECONDS."""
        request = pb.LoginRequest(name=self.name, password=self._password, address=self.advertise)
        what = f"login to tracker {self.address} as {self.name!r}"
        reply = self._while_busy(what, lambda: self._stub.Login(request, timeout=CALL_TIMEOUT))
        with self._lock:
            self._token, self.lease_seconds = reply.session_token, reply.lease_seconds
            if reply.address != self.listed_as and self.advertise:
                log.info("the tracker lists this peer as %s", reply.address)
            self.listed_as = reply.address
            self.reachability_problem = ""  # of this session, told now or by a heartbeat
            self._tickets.clear()
            self.generation += 1  # a new session starts with an empty index
        self._note_reachability(reply.reachability_problem)
        return reply.registered

    def _note_reachability(self, problem: str) -> None:
        """Warn the owner once when the tracker says it cannot connect to the address it lists."""
        if problem and problem != self.reachability_problem:
            log.warning(
                "the tracker could not connect to this peer at %s: %s; peers on other hosts likely cannot either"
                " (check --advertise, P2P_ADVERTISE, and the firewall or the container's published ports)",
                self.listed_as,
                problem,
            )
        self.reachability_problem = problem

    @property
    def logged_in(self) -> bool:
        return bool(self._token)

    def heartbeat(self) -> int:
        """Renew the lease; Unauthenticated when the tracker forgot the session."""
        try:
            reply = self._stub.Heartbeat(pb.HeartbeatRequest(), metadata=bearer_metadata(self._token), timeout=CALL_TIMEOUT)
        except grpc.RpcError as exc:
            raise as_p2p_error(exc, "heartbeat") from None
        self._note_reachability(reply.reachability_problem)
        return int(reply.lease_seconds)

    def keep_alive(self) -> None:
        """Renew the session in the background until logout, as `serve` does: a command outliving
        its lease (a `get --all` of an album, a download waiting for a busy seed) had its peer
        tickets refused ("ticket holder's session is no longer live"). A session the tracker
        forgot (a restart from an empty database) is opened again."""
        if self._kept_alive is not None:
            return
        stop = self._kept_alive = threading.Event()

        def renew() -> None:
            while not stop.wait(max(1.0, self.lease_seconds / 3)):
                try:
                    self.heartbeat()
                except Unauthenticated:
                    try:
                        self.login()
                    except P2PError as exc:
                        log.info("cannot log in again: %s", exc)
                    if stop.is_set():  # logged out meanwhile: not a session left to expire
                        self.logout()
                except P2PError as exc:  # unreachable for now: the next round tries again
                    log.info("%s", exc)

        threading.Thread(target=renew, name="session-keep-alive", daemon=True).start()

    def logout(self) -> None:
        if self._kept_alive is not None:
            self._kept_alive.set()
        if not self._token:
            return
        try:
            self._stub.Logout(pb.LogoutRequest(), metadata=bearer_metadata(self._token), timeout=5)
        except grpc.RpcError as exc:
            log.info("logout failed: %s", describe_rpc_error(exc, "logout"))
        self._token = ""

    # -- index ---------------------------------------------------------------------------
    def send_index(self, replace: bool, add: Sequence[SharedFile], remove: Sequence[str] = ()) -> int:
        """Publish files in batches on one stream, which the tracker applies atomically; a large
        update on several, each a consistent change of its own (the tracker holds an update
        whole in memory and takes at most 100,000 entries a stream; a replacement it stores as
        it comes)."""
        if replace:
            return self._send_index(pb.INDEX_MODE_REPLACE, add, ())
        if len(add) + len(remove) <= UPDATE_ENTRIES:
            return self._send_index(pb.INDEX_MODE_UPDATE, add, remove)
        count = 0
        for start in range(0, len(remove), UPDATE_ENTRIES):
            count = self._send_index(pb.INDEX_MODE_UPDATE, (), remove[start : start + UPDATE_ENTRIES])
        for start in range(0, len(add), UPDATE_ENTRIES):
            count = self._send_index(pb.INDEX_MODE_UPDATE, add[start : start + UPDATE_ENTRIES], ())
        return count

    def _send_index(self, mode: pb.IndexMode, add: Sequence[SharedFile], remove: Sequence[str]) -> int:
        def batches() -> Iterator[pb.SendIndexRequest]:
            yield pb.SendIndexRequest(mode=mode)
            for i in range(0, len(remove), INDEX_BATCH):  # names too: 100,000 of them pass the message limit
                yield pb.SendIndexRequest(remove=remove[i : i + INDEX_BATCH])
            for i in range(0, len(add), INDEX_BATCH):
                yield pb.SendIndexRequest(add=[_entry(f) for f in add[i : i + INDEX_BATCH]])

        # an auth failure here must reach the caller: re-login alone would publish an empty update
        reply = self._call("publish index", lambda md: self._stub.SendIndex(batches(), metadata=md, timeout=300), relogin=False)
        return int(reply.file_count)

    # -- lookups -------------------------------------------------------------------------
    def query(self, pattern: str = "", sha256: str = "", limit: int = 1000, peer: str = "") -> list[RemoteFile]:
        """All matches up to limit (of what account peer shares, if given), following pages."""
        found: list[RemoteFile] = []
        token = ""
        while len(found) < limit:
            request = pb.QueryRequest(
                name_pattern=pattern,
                sha256=sha256,
                page_size=min(1000, limit - len(found)),
                page_token=token,
                peer_name=peer,
            )
            reply = self._call("query at the tracker", partial(self._query_call, request))
            found.extend(_remote_file(m) for m in reply.files)
            token = reply.next_page_token
            if not token:
                break
        return found

    def _query_call(self, request: pb.QueryRequest, md: Metadata) -> pb.QueryResponse:
        return self._stub.Query(request, metadata=md, timeout=CALL_TIMEOUT)

    def peers(self, name: str = "", page_size: int = 0) -> list[OnlinePeer]:
        """The serving peers online now (name's places only, if given), following pages."""
        found: list[OnlinePeer] = []
        request = pb.ListPeersRequest(name=name, page_size=page_size)
        while True:
            reply = self._call("list peers", partial(self._peers_call, request))
            # a tracker before the name filter (it lists every peer) must not make them all name's
            found.extend(
                OnlinePeer(p.name, p.address, p.file_count, p.reachability_problem)
                for p in reply.peers
                if p.name == name or not name
            )
            if not reply.next_page_token:
                return found
            request = pb.ListPeersRequest(name=name, page_size=page_size, page_token=reply.next_page_token)

    def _peers_call(self, request: pb.ListPeersRequest, md: Metadata) -> pb.ListPeersResponse:
        return self._stub.ListPeers(request, metadata=md, timeout=CALL_TIMEOUT)

    def ticket(self, audience: str, fresh: bool = False) -> str:
        """A ticket for peer audience, reused until a minute before it expires; fresh: a new one,
        when audience refused the one kept (see PeerConnection)."""
        cached = None if fresh else self._tickets.get(audience)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        request = pb.IssuePeerTicketRequest(audience=audience)
        reply = self._call("get a peer ticket", lambda md: self._stub.IssuePeerTicket(request, metadata=md, timeout=CALL_TIMEOUT))
        self._tickets[audience] = (reply.ticket, time.monotonic() + max(0, reply.ttl_seconds - 60))
        return str(reply.ticket)

    def verify_ticket(self, ticket: str) -> tuple[str, int]:
        """Who holds ticket and for how many seconds it stays valid; Unauthenticated if invalid."""
        request = pb.VerifyPeerTicketRequest(ticket=ticket)
        try:
            reply = self._call("verify ticket", lambda md: self._stub.VerifyPeerTicket(request, metadata=md, timeout=10))
        except P2PError as exc:
            raise Unavailable(f"cannot verify the caller's ticket with the tracker: {exc}") from None
        if not reply.valid:
            raise Unauthenticated(f"peer ticket rejected: {reply.reason}")
        return str(reply.peer_name), int(reply.ttl_seconds)

    def close(self) -> None:
        self._channel.close()
