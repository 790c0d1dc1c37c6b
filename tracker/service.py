"""TrackerService over gRPC: wire messages to domain calls, expected errors to status codes."""

from __future__ import annotations

import ipaddress
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from itertools import chain
from typing import Any, TypeVar

import grpc

from p2p.v1 import tracker_pb2 as pb
from p2p.v1 import tracker_pb2_grpc as pb_grpc
from p2p_common.auth import current_principal
from p2p_common.errors import InvalidArgument, P2PError, Unauthenticated, abort_with
from tracker.directory import Directory, page_token_after
from tracker.store import FileRecord, Match, Session

F = TypeVar("F", bound=Callable[..., Any])
MAX_INDEX_FILES = 2_000_000  # entries of one SendIndex stream (a replacement is stored as it comes)
MAX_UPDATE_ENTRIES = 100_000  # one INDEX_MODE_UPDATE stream, held in memory whole: ~50 MB
# A Query page is cut short past this size, its next_page_token then resuming after the last match
# sent: a page of 1,000 course files with long names, each held by 64 peers, is ~19 MB, past every
# client's message limit (gRPC's default, grpcurl's too, is 4 MiB; ours 8). One match is at most
# ~1.2 MB (64 sources and 1,000 matched names of 1 KiB at most): a page always holds one.
MAX_QUERY_RESPONSE_BYTES = 3 * 1024 * 1024


def translate_errors(method: F) -> F:
    """Turn a P2PError raised by the domain into the call's status code and message."""

    @wraps(method)
    def run(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except P2PError as exc:
            abort_with(context, exc)

    return run  # type: ignore[return-value]


def _file_record(entry: pb.FileEntry) -> FileRecord:
    return FileRecord(entry.name, entry.size, entry.sha256, entry.chunk_size, entry.chunk_list_sha256, entry.partial)


def _checked_batches(requests: Iterable[pb.SendIndexRequest]) -> Iterator[pb.SendIndexRequest]:
    """A SendIndex stream's messages, each checked as it comes: the first sets the mode, none
    changes it, and the stream carries at most MAX_INDEX_FILES entries (an update, held whole,
    MAX_UPDATE_ENTRIES)."""
    mode, entries = pb.INDEX_MODE_UNSPECIFIED, 0
    for batch in requests:
        if mode == pb.INDEX_MODE_UNSPECIFIED:
            mode = batch.mode
            if mode not in (pb.INDEX_MODE_REPLACE, pb.INDEX_MODE_UPDATE):
                raise InvalidArgument("the first SendIndex message must set mode to INDEX_MODE_REPLACE or INDEX_MODE_UPDATE")
        elif batch.mode not in (pb.INDEX_MODE_UNSPECIFIED, mode):
            raise InvalidArgument("mode must not change within one SendIndex stream")
        entries += len(batch.add) + len(batch.remove)
        if entries > MAX_INDEX_FILES:
            raise InvalidArgument(f"one SendIndex stream may carry at most {MAX_INDEX_FILES} entries")
        if mode == pb.INDEX_MODE_UPDATE and entries > MAX_UPDATE_ENTRIES:
            raise InvalidArgument(
                f"an INDEX_MODE_UPDATE stream may carry at most {MAX_UPDATE_ENTRIES} entries;"
                " send a larger change in several, or the whole index with INDEX_MODE_REPLACE"
            )
        yield batch
    if mode == pb.INDEX_MODE_UNSPECIFIED:
        raise InvalidArgument("SendIndex stream was empty; send at least one message with a mode")


def _replacing(first: pb.SendIndexRequest, rest: Iterator[pb.SendIndexRequest]) -> Iterator[FileRecord]:
    """The entries of a replacing stream, as its messages come."""
    for batch in chain([first], rest):
        if batch.remove:
            raise InvalidArgument("remove must be empty with INDEX_MODE_REPLACE")
        yield from map(_file_record, batch.add)


def _query_response(matches: list[Match], next_page_token: str) -> pb.QueryResponse:
    """Built in place (messages made apart and then listed are copied in: ~25% slower for 50)."""
    response = pb.QueryResponse(next_page_token=next_page_token)
    for m in matches:
        found = response.files.add(
            sha256=m.sha256,
            name=m.name,
            size=m.size,
            chunk_size=m.chunk_size,
            chunk_list_sha256=m.chunk_list_sha256,
            matched_names=m.matched_names,
        )
        for s in m.sources:
            found.sources.add(peer_name=s.peer_name, address=s.address, name=s.name, partial=s.partial)
    if response.ByteSize() > MAX_QUERY_RESPONSE_BYTES:  # ~7 us for a page of 50
        _cut_to_size(response)
    return response


def _cut_to_size(response: pb.QueryResponse) -> None:
    """Keep the matches that fit in MAX_QUERY_RESPONSE_BYTES (at least one); the rest are the next page's."""
    size, keep = 100, 0  # the next page token (94 bytes with its tag and length)
    for found in response.files:
        size += found.ByteSize() + 8  # the field's tag and length
        if size > MAX_QUERY_RESPONSE_BYTES and keep:
            break
        keep += 1
    if keep < len(response.files):
        del response.files[keep:]
        response.next_page_token = page_token_after(response.files[-1].sha256)


def _ip_of(peer: str) -> str:
    """'ipv4:10.0.0.7:50312' -> '10.0.0.7', 'ipv6:[::1]:5' -> '[::1]': the caller's host as an address
    names it (an IPv4 caller of a dual-stack server, '[::ffff:10.0.0.7]', is '10.0.0.7'); '' for
    other kinds of callers (a unix socket)."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6") or ":" not in rest:
        return ""
    try:
        ip = ipaddress.ip_address(urllib.parse.unquote(rest.rsplit(":", 1)[0]).strip("[]"))
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip) if ip.version == 4 else f"[{ip}]"


def _session() -> Session:
    session = current_principal()
    assert isinstance(session, Session), "auth interceptor did not run"
    return session


class TrackerServicer(pb_grpc.TrackerServiceServicer):
    """The directory's gRPC face."""

    def __init__(self, directory: Directory):
        self._dir = directory

    @translate_errors
    def Login(self, request: pb.LoginRequest, context: grpc.ServicerContext) -> pb.LoginResponse:
        ip = _ip_of(context.peer())
        result = self._dir.login(request.name, request.password, request.address, ip or context.peer(), ip)
        return pb.LoginResponse(
            session_token=result.token,
            lease_seconds=self._dir.config.lease_seconds,
            registered=result.registered,
            address=result.address,
            reachability_problem=result.reachability_problem,
        )

    @translate_errors
    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> pb.HeartbeatResponse:
        lease, problem = self._dir.heartbeat(_session())
        return pb.HeartbeatResponse(lease_seconds=lease, reachability_problem=problem)

    @translate_errors
    def SendIndex(self, request_iterator: Iterable[pb.SendIndexRequest], context: grpc.ServicerContext) -> pb.SendIndexResponse:
        session = _session()
        batches = self._dir.renewed_while(session, _checked_batches(request_iterator))
        first = next(batches)
        if first.mode == pb.INDEX_MODE_REPLACE:  # stored as it comes (see Store.replace_index)
            count = self._dir.publish(session, True, _replacing(first, batches), [])
        else:
            add: list[FileRecord] = []
            remove: list[str] = []
            for batch in chain([first], batches):
                add.extend(_file_record(e) for e in batch.add)
                remove.extend(batch.remove)
            count = self._dir.publish(session, False, add, remove)
        return pb.SendIndexResponse(file_count=count)

    @translate_errors
    def Query(self, request: pb.QueryRequest, context: grpc.ServicerContext) -> pb.QueryResponse:
        matches, token = self._dir.query(
            request.name_pattern, request.sha256, request.page_size, request.page_token, request.peer_name
        )
        return _query_response(matches, token)

    @translate_errors
    def ListPeers(self, request: pb.ListPeersRequest, context: grpc.ServicerContext) -> pb.ListPeersResponse:
        peers, token = self._dir.peers(request.name, request.page_size, request.page_token)
        listed = [
            pb.Peer(
                name=p.name, address=p.address, file_count=p.file_count, reachability_problem=self._dir.reachability(p.address)
            )
            for p in peers
        ]
        return pb.ListPeersResponse(peers=listed, next_page_token=token)

    @translate_errors
    def IssuePeerTicket(self, request: pb.IssuePeerTicketRequest, context: grpc.ServicerContext) -> pb.IssuePeerTicketResponse:
        ticket, ttl = self._dir.issue_ticket(_session(), request.audience)
        return pb.IssuePeerTicketResponse(ticket=ticket, ttl_seconds=ttl)

    @translate_errors
    def VerifyPeerTicket(self, request: pb.VerifyPeerTicketRequest, context: grpc.ServicerContext) -> pb.VerifyPeerTicketResponse:
        try:
            holder, ttl = self._dir.verify_ticket(_session(), request.ticket)
        except Unauthenticated as exc:  # the ticket is bad, not the caller's session
            return pb.VerifyPeerTicketResponse(valid=False, reason=str(exc))
        return pb.VerifyPeerTicketResponse(valid=True, peer_name=holder, ttl_seconds=ttl)

    @translate_errors
    def GetStats(self, request: pb.GetStatsRequest, context: grpc.ServicerContext) -> pb.GetStatsResponse:
        stats, guard = self._dir.stats(), self._dir.login_guard
        return pb.GetStatsResponse(
            live_sessions=stats.live_sessions,
            serving_peers=stats.serving_peers,
            files=stats.files,
            contents=stats.contents,
            accounts=stats.accounts,
            names_waiting_to_be_indexed=stats.names_waiting,
            uptime_seconds=int(time.monotonic() - self._dir.started),
            lease_seconds=self._dir.config.lease_seconds,
            logins_refused_busy=guard.refused_busy,
            logins_refused_wrong_passwords=guard.refused_wrong_passwords,
        )

    @translate_errors
    def Logout(self, request: pb.LogoutRequest, context: grpc.ServicerContext) -> pb.LogoutResponse:
        self._dir.logout(_session())
        return pb.LogoutResponse()
