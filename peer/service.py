"""PeerService over gRPC: serve manifests and chunks of the share, receive verified uploads."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from p2p.v1 import peer_pb2 as pb
from p2p.v1 import peer_pb2_grpc as pb_grpc
from p2p_common.auth import current_principal
from p2p_common.errors import (
    AlreadyExists,
    Busy,
    DataLoss,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    P2PError,
    PermissionDenied,
    ResourceExhausted,
    abort_with,
)
from p2p_common.names import is_sha256_hex, name_problem
from p2p_common.wording import counted, ordinal
from peer.availability import ChunkMap
from peer.chunk_store import BeingWritten, PartialFile, StagedListing, Write
from peer.chunk_wire import encode_download_response, encode_not_held
from peer.manifest import Manifest
from peer.share import Share, SharedFile, is_unchanged, open_unchanged
from peer.throttle import Throttle
from peer.transfer_slots import Refused, TransferSlots, Turn

log = logging.getLogger(__name__)

MAX_INDEXES_PER_REQUEST = 4096
DISK_RESERVE = 64 * 1024 * 1024  # keep this much free beyond an upload, so the disk never fills
_HANDED_OVER = "this peer handed this transfer's slot to a caller waiting for one; try again shortly"  # see transfer_slots


def _refuse_unshared(dest: Path, name: str) -> None:
    """AlreadyExists when something this peer does not share is at dest: a link, a pipe or
    device, or a file not indexed yet (still being written): the owner's, never replaced."""
    if os.path.lexists(dest):
        raise AlreadyExists(f"{name} already exists in this share, not shared (a link, a special file, or one being written)")


def _store_error(exc: OSError) -> P2PError:
    """What the sender of an upload is told when this peer cannot write it."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted("this peer's disk filled up during the upload; the chunks it verified are kept for a resume")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDenied(f"this peer cannot write into its share ({exc.strerror})")
    if exc.errno == errno.ENAMETOOLONG:  # the sender's name, not this peer's fault
        return InvalidArgument(
            "the name is longer than this peer's file system allows (most allow 255 bytes a folder or file name):"
            " send it under a shorter one (put --as)"
        )
    return Internal(f"this peer could not store the upload ({exc.strerror or exc})")


@dataclass(frozen=True)
class UploadPolicy:
    """Whether and how much this peer accepts from others."""

    allowed: bool = False
    max_bytes: int = 1 << 34


class PeerServicer(pb_grpc.PeerServiceServicer):
    """Serves only indexed content of the share; every chunk read is checked to be unchanged."""

    def __init__(
        self,
        share: Share,
        policy: UploadPolicy,
        on_new_file: Callable[[SharedFile], None] = lambda f: None,
        max_transfers: int = 16,
        throttle: Throttle | None = None,
    ):
        self._share = share
        self._throttle = throttle  # the rate all Download streams together may send at
        self._policy = policy
        self._on_new_file = on_new_file
        # Transfer streams hold a worker thread each for their whole length: past this many, new
        # ones are refused at once, so threads stay free for health checks and manifests and
        # the caller turns to another source instead of queueing behind the busy ones.
        self._slots = TransferSlots(max_transfers)
        self._started = time.monotonic()
        self._tally_lock = threading.Lock()
        self._chunks_served = self._bytes_served = self._uploads_received = 0
        # the content each upload under way brings, by name: a second sender of other content under
        # that name is refused at its offer (it used to send the whole file, then find the name taken)
        self._receiving: dict[str, str] = {}

    @contextmanager
    def _transfer_slot(self) -> Iterator[Turn]:
        """A slot for this call's caller (see transfer_slots), or Busy saying why there is none
        and when to ask again."""
        caller = str(current_principal() or "")
        turn = self._slots.take(caller)
        if isinstance(turn, Refused):
            why = (
                f"this peer is already serving {counted(self._slots.limit, 'transfer')}"
                if turn.all_taken
                else f"this peer keeps its free transfer slot for a caller holding fewer than your {self._slots.held_by(caller)}"
            )
            raise Busy(f"{why}; {ordinal(turn.place)} in line for one, try again shortly", turn.retry_after, turn.place)
        try:
            yield turn
        finally:
            self._slots.give_back(turn)

    def _lookup(self, sha256: str) -> SharedFile:
        if not is_sha256_hex(sha256):
            raise InvalidArgument("sha256 must be 64 lowercase hex digits")
        return self._share.by_sha256(sha256)

    def GetManifest(self, request: pb.GetManifestRequest, context: grpc.ServicerContext) -> pb.GetManifestResponse:
        try:
            m = self._lookup(request.sha256).manifest
        except P2PError as exc:
            abort_with(context, exc)
        return pb.GetManifestResponse(sha256=m.sha256, size=m.size, chunk_size=m.chunk_size, chunk_digests=list(m.chunk_digests))

    def GetStatus(self, request: pb.GetStatusRequest, context: grpc.ServicerContext) -> pb.GetStatusResponse:
        published = self._share.published()
        files = [f for f in published if not f.partial]
        size = sum(f.manifest.size for f in files)  # outside the lock the serving threads count under
        with self._tally_lock:
            return pb.GetStatusResponse(
                files=len(files),
                bytes=size,
                indexed=self._share.complete,
                transfers_active=self._slots.in_use,
                transfers_max=self._slots.limit,
                transfers_waiting=self._slots.waiting(),
                chunks_served=self._chunks_served,
                bytes_served=self._bytes_served,
                uploads_received=self._uploads_received,
                max_serve_rate=self._throttle.rate if self._throttle else 0,
                uploads_allowed=self._policy.allowed,
                uptime_seconds=int(time.monotonic() - self._started),
                partial_files=len(published) - len(files),
                left_out=self._share.left_out,
            )

    def Download(self, request_iterator: Iterator[pb.DownloadRequest], context: grpc.ServicerContext) -> Iterator[bytes]:
        try:
            with self._transfer_slot() as turn:
                yield from self._serve_chunks(request_iterator, context, turn)
        except P2PError as exc:
            abort_with(context, exc)

    def _wait_for_budget(self, size: int, context: grpc.ServicerContext) -> bool:
        """Hold a chunk back as long as the serve rate asks; False when the caller went away
        meanwhile (a finished download cancels the chunks it still had asked for)."""
        if self._throttle is None:
            return True
        deadline = time.monotonic() + self._throttle.take(size)
        while (left := deadline - time.monotonic()) > 0 and context.is_active():
            time.sleep(min(left, 0.5))
        return context.is_active()

    def _serve_chunks(
        self, request_iterator: Iterator[pb.DownloadRequest], context: grpc.ServicerContext, turn: Turn
    ) -> Iterator[bytes]:
        """Each requested chunk, read as it is asked for, of the file the request names (or the
        last request that named one). The first must name a file this peer holds (NOT_FOUND
        otherwise); a later one naming content it does not hold has its chunks answered not
        held, and the stream goes on: one stream carries many small files (see small_files).
        Busy once the stream's slot is handed to a caller waiting for one (transfer_slots)."""
        first = next(request_iterator, None)
        if first is None:
            return
        serving: _Served | None = _Served(self._share.root, self._lookup(first.sha256))
        try:
            request: pb.DownloadRequest | None = first
            while request is not None:
                if len(request.chunk_indexes) > MAX_INDEXES_PER_REQUEST:
                    raise InvalidArgument(f"at most {MAX_INDEXES_PER_REQUEST} chunk indexes per request")
                if request.sha256 and (serving is None or request.sha256 != serving.shared.manifest.sha256):
                    if serving is not None:
                        serving.close()
                    serving = None  # not held here: each chunk asked is answered so
                    with contextlib.suppress(NotFound):
                        serving = _Served(self._share.root, self._lookup(request.sha256))
                for index in request.chunk_indexes:
                    if refused := self._slots.yielded(turn):
                        raise Busy(_HANDED_OVER, refused.retry_after, refused.place)
                    if serving is None:
                        yield encode_not_held(index, ChunkMap())
                        continue
                    m = serving.shared.manifest
                    if index >= m.chunk_count:
                        raise InvalidArgument(f"chunk {index} is out of range: {serving.shared.name} has {m.chunk_count} chunks")
                    staged = serving.shared.staged
                    if staged is None:
                        if not self._wait_for_budget(m.chunk_length(index), context):
                            return
                        data = os.pread(serving.fd, m.chunk_length(index), index * m.chunk_size)
                        if len(data) != m.chunk_length(index) or not is_unchanged(serving.fd, serving.shared):
                            raise NotFound(
                                f"{serving.shared.name} changed while it was being served: this peer no longer holds that content"
                            )
                    else:
                        chunk = staged.read_chunk(serving.fd, index) if staged.holds(index) else None
                        if chunk is None:
                            staged.forget(index)  # in case it was recorded but its bytes do not check out
                            yield encode_not_held(index, staged.chunk_map())
                            continue
                        if not self._wait_for_budget(len(chunk), context):
                            return
                        data = chunk
                    with self._tally_lock:
                        self._chunks_served += 1
                        self._bytes_served += len(data)
                    yield encode_download_response(index, data)
                request = next(request_iterator, None)
        finally:
            if serving is not None:
                serving.close()

    def Upload(self, request_iterator: Iterator[pb.UploadRequest], context: grpc.ServicerContext) -> Iterator[pb.UploadResponse]:
        try:
            with self._transfer_slot() as turn:
                yield from self._receive_upload(request_iterator, turn)
        except P2PError as exc:
            abort_with(context, exc)
        except OSError as exc:  # this peer's disk, not the request: told without this peer's paths
            log.warning("could not store an upload: %s", exc)
            abort_with(context, _store_error(exc))

    def _receive_upload(self, request_iterator: Iterator[pb.UploadRequest], turn: Turn) -> Iterator[pb.UploadResponse]:
        """Files one after another, each its offer, what is held already, the missing chunks
        verified, then the file published. A file ends once every chunk is held, and the next
        message may offer another: a folder of small files pays a stream's set-up once. Busy at
        an offer once the stream's slot is handed to a caller waiting for one (transfer_slots)."""
        staged = StagedListing()  # each folder listed once a stream: once a file, 10,000 files sent into one took 51 s
        message = next(request_iterator, None)
        if message is None or not message.HasField("offer"):
            raise InvalidArgument("the first Upload message must be an offer")
        while message is not None:
            if not message.HasField("offer"):
                raise InvalidArgument("a file is complete: the next Upload message must offer another file")
            yield from self._receive_file(message.offer, request_iterator, staged)
            message = next(request_iterator, None)
            if message is not None and (refused := self._slots.yielded(turn)):
                raise Busy(_HANDED_OVER, refused.retry_after, refused.place)

    def _receive_file(
        self, offer: pb.UploadOffer, request_iterator: Iterator[pb.UploadRequest], staged: StagedListing
    ) -> Iterator[pb.UploadResponse]:
        partial: PartialFile | None = None
        receiving: str | None = None  # the name this upload holds in _receiving
        try:
            name, manifest = self._accept(offer, str(current_principal()))
            dest = self._share.path_for(name)
            existing = self._share.by_name(name)
            if existing is None:
                _refuse_unshared(dest, name)
            if existing is not None and existing.staged is None and existing.manifest.sha256 == manifest.sha256:
                held = list(range(manifest.chunk_count))
                yield pb.UploadResponse(accepted=pb.UploadAccepted(have_chunks=held, takes_more_files=True))
                yield pb.UploadResponse(complete=pb.UploadComplete(name=name, sha256=manifest.sha256, already_there=True))
                return
            receiving = self._claim_name(name, manifest.sha256)
            try:
                partial = PartialFile(dest, manifest, staged)
            except BeingWritten:  # told without this peer's paths
                raise FailedPrecondition(f"another upload of {name} is under way here; send it again once it ends") from None
            yield pb.UploadResponse(accepted=pb.UploadAccepted(have_chunks=partial.held(), takes_more_files=True))
            received = 0
            while not partial.complete:
                message = next(request_iterator, None)
                if message is None:
                    missing = len(partial.missing())
                    partial.close()
                    raise FailedPrecondition(f"upload ended with {counted(missing, 'chunk')} missing; send them again to resume")
                if not message.HasField("chunk"):
                    raise InvalidArgument("after the offer, every Upload message must be a chunk until the file is complete")
                chunk = message.chunk
                if chunk.index >= manifest.chunk_count:
                    raise InvalidArgument(f"chunk {chunk.index} is out of range: the offer has {manifest.chunk_count} chunks")
                if partial.write_chunk(chunk.index, chunk.data) is Write.REJECTED:
                    raise DataLoss(f"chunk {chunk.index} does not match its digest in the offer")
                received += len(chunk.data)
            current = self._share.by_name(name)
            if current is not None and current.manifest.sha256 != manifest.sha256:
                partial.close()
                raise AlreadyExists(f"{name} appeared in the share meanwhile")
            if current is None:
                _refuse_unshared(dest, name)  # put there while the chunks came in
            path = partial.finish()
            shared = self._share.add_verified(name, path, manifest)
            log.info("received %s (%d bytes) from %s", name, manifest.size, current_principal())
            self._on_new_file(shared)
            with self._tally_lock:
                self._uploads_received += 1
            yield pb.UploadResponse(complete=pb.UploadComplete(name=name, sha256=manifest.sha256, bytes_received=received))
        finally:
            if partial is not None:
                partial.close()
            if receiving is not None:
                with self._tally_lock:
                    del self._receiving[receiving]

    def _claim_name(self, name: str, sha256: str) -> str | None:
        """Note that an upload of sha256 into name is under way: name, to release at its end, or
        None when one of the same content is (PartialFile lets only one of those write)."""
        with self._tally_lock:
            under_way = self._receiving.get(name)
            if under_way is None:
                self._receiving[name] = sha256
                return name
        if under_way != sha256:
            raise FailedPrecondition(
                f"another upload to {name}, of other content, is under way here: send yours under another name,"
                " or again once that one ends"
            )
        return None

    def _accept(self, offer: pb.UploadOffer, sender: str) -> tuple[str, Manifest]:
        """Check the offer against the policy, the share and the disk."""
        if not self._policy.allowed:
            raise PermissionDenied("this peer does not accept uploads (start it with --allow-uploads)")
        problem = name_problem(offer.name)
        if problem:
            raise InvalidArgument(f"name {offer.name!r} {problem}")
        manifest = Manifest(offer.sha256, offer.size, offer.chunk_size, tuple(offer.chunk_digests))
        manifest.check()
        if offer.size > self._policy.max_bytes:
            raise ResourceExhausted(f"{offer.name} is {offer.size} bytes; this peer accepts at most {self._policy.max_bytes}")
        existing = self._share.by_name(offer.name)
        if existing is not None and existing.manifest.sha256 != offer.sha256:
            raise AlreadyExists(
                f"{offer.name} already exists here with different content, which an upload never replaces:"
                " send it under another name"
            )
        free = shutil.disk_usage(self._share.root).free
        if offer.size + DISK_RESERVE > free:
            raise ResourceExhausted(f"not enough disk space for {offer.name}: {offer.size} bytes offered, {free} free")
        log.info("upload of %s (%d bytes) offered by %s", offer.name, offer.size, sender)
        return offer.name, manifest


class _Served:
    """A shared file a Download stream reads from, open."""

    __slots__ = ("fd", "shared")

    def __init__(self, root: Path, shared: SharedFile):
        self.shared = shared
        self.fd = open_unchanged(root, shared) if shared.staged is None else shared.staged.open()

    def close(self) -> None:
        os.close(self.fd)
