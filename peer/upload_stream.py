"""Files pushed to one peer one after another over one Upload stream.

A stream a file cost ~1 ms of set-up at both ends (a call, and a thread on each side): 10,000
small files took 26 s to `put`. The receiver ends a file once it holds every chunk and then takes
another offer, so a stream is opened once and carries file after file; a file that fails ends it,
and the next file opens another. A receiver of an earlier version (UploadAccepted without
takes_more_files) waits for a half-close after each file's chunks: it gets one, and a stream a file.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import grpc

from p2p.v1 import peer_pb2 as pb
from p2p_common.errors import P2PError, Unavailable, as_p2p_error
from peer.downloader import Cancelled, Progress
from peer.manifest import Manifest
from peer.peer_client import PeerConnection, UploadCall
from peer.stall import StallWatch
from peer.throttle import Throttle


class _Open(NamedTuple):
    """An Upload stream under way: what is sent on it, what comes back, and its stall cut-off."""

    sends: queue.Queue[pb.UploadRequest | None]
    responses: UploadCall
    watch: StallWatch


_END = None  # ends the stream: the receiver keeps a file not complete yet for a resume
QUEUED = 2  # messages handed to gRPC ahead: chunks are read from disk as the stream takes them


@dataclass(frozen=True)
class UploadResult:
    """What one file's upload did."""

    name: str
    sha256: str
    size: int
    bytes_sent: int
    chunks_skipped: int  # the receiver already held them (a resumed upload)
    already_there: bool = False  # the receiver held the file whole under that name: nothing was written


class UploadStream:
    """One Upload stream to conn's peer, opened at the first file and kept for the next ones;
    used by one thread at a time. close() ends it."""

    def __init__(self, conn: PeerConnection, stall_seconds: float):
        self._conn = conn
        self._stall_seconds = stall_seconds
        self._open_now: _Open | None = None

    def send(
        self,
        path: Path,
        manifest: Manifest,
        name: str,
        on_progress: Callable[[Progress], None] | None,
        throttle: Throttle | None,
        cancel: threading.Event,
    ) -> UploadResult:
        """The offer, the chunks the receiver lacks, its confirmation. Any failure ends the
        stream (the receiver keeps what it verified); cancel set: it ends short, and Cancelled."""
        peer_name = self._conn.peer_name
        ended_well = False
        sent = 0
        if self._open_now is not None and self._open_now.responses.done():  # ended since the last file (a restart)
            self.close(cancel=True)
        try:
            offer = pb.UploadOffer(name=name, size=manifest.size, sha256=manifest.sha256, chunk_size=manifest.chunk_size)
            offer.chunk_digests.extend(manifest.chunk_digests)
            first = self._offered(pb.UploadRequest(offer=offer))
            if not first.HasField("accepted"):
                raise P2PError(f"{peer_name} did not accept the offer")
            have = set(first.accepted.have_chunks)
            with open(path, "rb") as f:
                for index in range(manifest.chunk_count):
                    if index in have:
                        continue
                    f.seek(index * manifest.chunk_size)
                    data = f.read(manifest.chunk_length(index))
                    if cancel.wait(throttle.take(len(data)) if throttle else 0):
                        raise Cancelled("stopped; a rerun sends only what is missing")
                    self._put(pb.UploadRequest(chunk=pb.UploadChunk(index=index, data=data)))
                    sent += len(data)
                    if on_progress:
                        on_progress(Progress(manifest.size, sent, 1, sent))
            if not first.accepted.takes_more_files:  # a peer of an earlier version: this file alone
                self._put(_END)
            final = self._next()
            if not final.HasField("complete") or final.complete.sha256 != manifest.sha256:
                raise P2PError(f"{peer_name} did not confirm the upload")
            ended_well = True
            if not first.accepted.takes_more_files:
                self.close()  # its end, read: the next file opens another stream
        except Cancelled:
            self.close()  # a half-close: what was sent arrives and is kept, for a rerun to resume
            raise
        except grpc.RpcError as exc:
            if self._open_now is not None and self._open_now.watch.fired:
                raise Unavailable(
                    f"{peer_name} took nothing for {self._stall_seconds:g} s; the upload stopped (rerun to resume)"
                ) from None
            raise as_p2p_error(exc, f"upload to {peer_name}") from None
        finally:
            if not ended_well:
                self.close(cancel=True)
        done = final.complete
        return UploadResult(done.name, manifest.sha256, manifest.size, sent, len(have), done.already_there)

    def _offered(self, offer: pb.UploadRequest) -> pb.UploadResponse:
        """The receiver's answer to offer. A stream opened for it whose ticket the receiver
        refused is opened once more with a fresh ticket (see PeerConnection)."""
        opening = self._open_now is None
        self._put(offer)
        try:
            return self._next()
        except grpc.RpcError as exc:
            if not opening or exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise
        self.close(cancel=True)
        self._open(fresh_ticket=True)
        self._put(offer)
        return self._next()

    def _open(self, fresh_ticket: bool = False) -> _Open:
        if self._open_now is None:
            sends: queue.Queue[pb.UploadRequest | None] = queue.Queue(maxsize=QUEUED)
            responses = self._conn.upload(iter(sends.get, _END), fresh_ticket)
            self._open_now = _Open(sends, responses, StallWatch(self._stall_seconds))
            self._open_now.watch.watch(self._open_now.responses.cancel)
        return self._open_now

    def _put(self, request: pb.UploadRequest | None) -> None:
        """Hand request to the stream once it has room (the receiver takes what it was sent)."""
        sends, responses, watch = self._open()
        with watch.waiting():
            while True:
                try:
                    sends.put(request, timeout=0.1)
                    return
                except queue.Full:
                    if responses.done():  # the receiver ended the stream: next() says why
                        self._next()
                        raise P2PError(f"{self._conn.peer_name} ended the upload early") from None

    def _next(self) -> pb.UploadResponse:
        _, responses, watch = self._open()
        with watch.waiting():
            try:
                return next(responses)
            except StopIteration:
                raise P2PError(f"{self._conn.peer_name} ended the upload early") from None

    def close(self, cancel: bool = False) -> None:
        """End the stream: a half-close, or with cancel, at once (the receiver keeps the verified
        chunks of a file not complete either way, for a resume)."""
        if self._open_now is None:
            return
        sends, responses, watch = self._open_now
        self._open_now = None
        try:
            if cancel or not _half_closed(sends, responses, watch):
                with contextlib.suppress(queue.Full):
                    sends.put_nowait(_END)  # gRPC's thread reading the requests, if waiting, ends
                responses.cancel()
        finally:
            watch.stop()


def _half_closed(sends: queue.Queue[pb.UploadRequest | None], responses: UploadCall, watch: StallWatch) -> bool:
    """The requests end, and the receiver ends its side (with an error when a file was left
    short); False when it took nothing more."""
    try:
        with watch.waiting():
            sends.put(_END, timeout=watch.stall_seconds)
            for _ in responses:
                pass
    except queue.Full:
        return False
    except grpc.RpcError:  # a file left short: the receiver says so, and keeps what it verified
        pass
    return True
