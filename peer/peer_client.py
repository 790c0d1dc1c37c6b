"""Calls to another peer's PeerService: manifests, chunk streams and uploads."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

import grpc

from p2p.v1 import peer_pb2 as pb
from p2p.v1 import peer_pb2_grpc as pb_grpc
from p2p_common.auth import Metadata, bearer_metadata
from p2p_common.errors import P2PError, Unavailable, as_p2p_error
from p2p_common.options import GRPC_OPTIONS
from p2p_common.tls import ClientTls, open_channel
from peer.availability import NotHeld
from peer.chunk_wire import DOWNLOAD_METHOD, parse_download_response
from peer.manifest import Manifest

_END = object()
T = TypeVar("T")


class PeerChannels:
    """One channel a peer address for the files of one command (`get` of several, `put` of
    several): their streams share each peer's connection, multiplexed by HTTP/2, instead of
    each file dialling it anew (over TLS, a handshake a file: 200 for an album of 200 tracks).
    Channels connect on their first call; close() ends them all."""

    def __init__(self, tls: ClientTls | None):
        self._tls = tls
        self._lock = threading.Lock()
        self._open: dict[str, grpc.Channel] = {}

    def get(self, address: str) -> grpc.Channel:
        with self._lock:
            channel = self._open.get(address)
            if channel is None:
                channel = self._open[address] = open_channel(address, self._tls, GRPC_OPTIONS)
            return channel

    def close(self) -> None:
        with self._lock:
            channels, self._open = list(self._open.values()), {}
        for channel in channels:
            channel.close()


class PeerConnection:
    """Calls to one peer over channels' connection to it, authenticated with a ticket addressed
    to it (channels, not this, closes the connection).

    Nothing happens until the first call: the channel connects then, and the ticket is asked
    for then (a spare source that is never used costs no tracker call and no connection). Each
    call asks for it again (the tracker client keeps one until a minute before it expires): a
    stream opened minutes later, after a busy seed let this one in, must not carry an expired one.

    A call the peer refuses (UNAUTHENTICATED) is made once more with a fresh ticket: a kept one
    outlives its session when the session lapses (a laptop asleep past its lease) and is opened
    again, or the tracker restarts with tickets it no longer vouches for. ticket(fresh) gives it.
    """

    def __init__(
        self, peer_name: str, address: str, ticket: Callable[[bool], str], channels: PeerChannels, partial: bool = False
    ):
        self.peer_name = peer_name
        self.address = address
        self.label = f"{peer_name}@{address}"
        self.partial = partial  # still downloading the file: holds only some chunks
        self._ticket = ticket
        self._channel = channels.get(address)
        self._stub = pb_grpc.PeerServiceStub(self._channel)

    def metadata(self, fresh: bool = False) -> Metadata:
        """The call's metadata: this peer's ticket, a new one if fresh."""
        return bearer_metadata(self._ticket(fresh))

    def _unary(self, call: Callable[[Metadata], T]) -> T:
        """call's reply, made again once with a fresh ticket if the peer refused the one kept."""
        try:
            return call(self.metadata())
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise
        return call(self.metadata(fresh=True))

    def manifest(self, sha256: str, timeout: float) -> Manifest:
        request = pb.GetManifestRequest(sha256=sha256)
        try:
            reply = self._unary(lambda md: self._stub.GetManifest(request, metadata=md, timeout=timeout))
        except grpc.RpcError as exc:
            raise as_p2p_error(exc, "manifest") from None
        return Manifest(reply.sha256, reply.size, reply.chunk_size, tuple(reply.chunk_digests))

    def status(self, timeout: float = 10) -> pb.GetStatusResponse:
        try:
            return self._unary(lambda md: self._stub.GetStatus(pb.GetStatusRequest(), metadata=md, timeout=timeout))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:  # frozen, or its network silent
                raise Unavailable(f"{self.label} did not answer within {timeout:g} s") from None
            raise as_p2p_error(exc, f"status of {self.label}") from None

    def chunk_stream(self, sha256: str) -> ChunkStream:
        return ChunkStream(self._channel, self.metadata, sha256)

    def upload(self, requests: Iterator[pb.UploadRequest], fresh_ticket: bool = False) -> UploadCall:
        """Start an Upload stream; the caller reads the responses (RpcError on failure, and
        UNAUTHENTICATED at the first when the ticket was refused: see UploadStream)."""
        return self._stub.Upload(requests, metadata=self.metadata(fresh_ticket))


class UploadCall(Protocol):
    """The responses of an Upload stream, which can be cancelled."""

    def __next__(self) -> pb.UploadResponse: ...
    def __iter__(self) -> Iterator[pb.UploadResponse]: ...
    def cancel(self) -> bool: ...
    def done(self) -> bool: ...


class ChunkStream:
    """One Download stream: ask for chunk indexes at any time, read the chunks in the order asked.

    A stream whose ticket the peer refused, before any answer, is opened once more with a fresh
    one and asked again for all it was asked (see PeerConnection)."""

    def __init__(self, channel: grpc.Channel, metadata: Callable[[bool], Metadata], sha256: str):
        self._download = channel.stream_stream(
            DOWNLOAD_METHOD,
            request_serializer=pb.DownloadRequest.SerializeToString,
            response_deserializer=parse_download_response,
        )
        self._metadata = metadata
        self._sha256 = sha256
        self._named = ""  # the file the last request named
        self._unanswered: list[pb.DownloadRequest] | None = []  # asked while a refusal may come
        self._lock = threading.Lock()  # the stream in use, swapped at a refusal while close() may come
        self._closed = False
        self._asks, self._call = self._open(metadata(False))

    def _open(self, md: Metadata) -> tuple[queue.SimpleQueue[object], Any]:
        asks: queue.SimpleQueue[object] = queue.SimpleQueue()
        return asks, self._download(_requests(asks), metadata=md)

    def ask(self, indexes: list[int], sha256: str = "") -> None:
        """Ask for chunk indexes of the stream's file, or of sha256's (named in the request when
        it is not the file the last one named: see small_files)."""
        sha256 = sha256 or self._sha256
        request = pb.DownloadRequest(chunk_indexes=indexes)
        if sha256 != self._named:
            request.sha256 = self._named = sha256
        with self._lock:
            if self._unanswered is not None:
                self._unanswered.append(request)
            self._asks.put(request)

    def next_chunk(self) -> tuple[int, memoryview]:
        """The next chunk asked for; P2PError when the peer fails or ends the stream early,
        NotHeld when a partial source does not hold it yet."""
        try:
            answer = next(self._call)
        except StopIteration:
            raise P2PError("chunk stream: ended early") from None
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED and self._opened_again():
                return self.next_chunk()
            if exc.code() == grpc.StatusCode.INTERNAL and "deserializ" in (exc.details() or "").lower():
                raise P2PError("chunk stream: a malformed message") from None
            raise as_p2p_error(exc, "chunk stream") from None
        self._unanswered = None  # a stream answered: its ticket was taken
        if isinstance(answer, NotHeld):
            raise answer
        return answer

    def _opened_again(self) -> bool:
        """After the peer refused the ticket: the same asks on a new stream with a fresh ticket,
        once; False if the stream was answered, opened again already, or closed."""
        if self._unanswered is None:
            return False
        md = self._metadata(True)
        with self._lock:
            if self._closed or self._unanswered is None:
                return False
            self._asks.put(_END)
            self._asks, self._call = self._open(md)
            for request in self._unanswered:
                self._asks.put(request)
            self._unanswered = None
        return True

    def close(self) -> None:
        """Cancel whatever is still in flight (the loser of a duplicated request, or a dropped peer)."""
        with self._lock:
            self._closed = True
            asks, call = self._asks, self._call
        asks.put(_END)
        call.cancel()


def _requests(asks: queue.SimpleQueue[object]) -> Iterator[pb.DownloadRequest]:
    """A stream's requests as they are asked, until _END."""
    while True:
        item = asks.get()
        if item is _END:
            return
        yield item
