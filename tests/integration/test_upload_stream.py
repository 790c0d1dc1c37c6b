"""File after file over one Upload stream (peer/upload_stream.py and the receiver's side), in-process:
a real tracker, real PeerService servers, real files on disk."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter

import grpc
import pytest

from p2p.v1 import peer_pb2 as pb
from p2p.v1 import peer_pb2_grpc
from p2p_common.errors import AlreadyExists
from peer import service
from peer.chunk_store import is_staging_file
from peer.downloader import Cancelled
from peer.peer_client import PeerChannels
from peer.transfers import push, upload_stream
from tests.helpers import wait_for

MiB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def offer(name: str, data: bytes) -> pb.UploadRequest:
    digests = [hashlib.sha256(data).digest()]
    return pb.UploadRequest(
        offer=pb.UploadOffer(name=name, size=len(data), sha256=sha(data), chunk_size=MiB, chunk_digests=digests)
    )


def chunk(data: bytes) -> pb.UploadRequest:
    return pb.UploadRequest(chunk=pb.UploadChunk(index=0, data=data))


@pytest.fixture
def inbox(start_peer_at, peer_stub):
    node = start_peer_at("inbox", {"there.txt": b"already there"}, allow_uploads=True)
    stub, md = peer_stub(node, "inbox")
    return node, stub, md


@pytest.fixture
def upload_streams(monkeypatch) -> Counter[str]:
    """Upload streams the receivers were asked to open."""
    opened: Counter[str] = Counter()
    real = service.PeerServicer._receive_upload

    def counting(self, request_iterator, *rest):
        opened["streams"] += 1
        return real(self, request_iterator, *rest)

    monkeypatch.setattr(service.PeerServicer, "_receive_upload", counting)
    return opened


def test_one_stream_carries_files_one_after_another(inbox):
    node, stub, md = inbox
    a, c = b"first file", b"third file"
    requests = [offer("a.txt", a), chunk(a), offer("there.txt", b"already there"), offer("sub/c.txt", c), chunk(c)]
    answers = list(stub.Upload(iter(requests), metadata=md, timeout=10))
    kinds = [m.WhichOneof("kind") for m in answers]
    assert kinds == ["accepted", "complete"] * 3
    assert [m.complete.name for m in answers[1::2]] == ["a.txt", "there.txt", "sub/c.txt"]
    assert answers[3].complete.already_there and not answers[1].complete.already_there
    assert (node.share.root / "a.txt").read_bytes() == a and (node.share.root / "sub/c.txt").read_bytes() == c


def test_a_file_ends_when_its_chunks_are_all_there_and_only_an_offer_may_follow(inbox):
    _node, stub, md = inbox
    data = b"payload"
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Upload(iter([offer("x.txt", data), chunk(data), chunk(data)]), metadata=md, timeout=10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "must offer another file" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Upload(iter([offer("y.txt", data), offer("z.txt", data)]), metadata=md, timeout=10))
    assert (
        err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        and "must be a chunk until the file is complete" in err.value.details()
    )
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Upload(iter([offer("w.txt", data)]), metadata=md, timeout=10))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "1 chunk missing" in err.value.details()


def test_push_sends_files_on_one_stream_and_a_refused_one_opens_the_next(start_peer_at, client, tmp_path, upload_streams):
    receiver = start_peer_at("inbox", {"taken.txt": b"the receiver's own"}, allow_uploads=True)
    local = {f"f{i}.txt": f"file {i}".encode() * (i + 1) for i in range(5)}
    local["taken.txt"] = b"another content"
    local["big.bin"] = bytes(range(256)) * (12 * 1024 + 5)  # 3 MiB and a bit: several chunks
    for name, data in local.items():
        (tmp_path / name).write_bytes(data)
    channels = PeerChannels(None)
    stream = upload_stream(client, "inbox", receiver.tracker.advertise, channels, 60)
    refused = []
    try:
        for name in ["f0.txt", "f1.txt", "taken.txt", "f2.txt", "big.bin", "f3.txt", "f4.txt"]:
            try:
                result = push(client, tmp_path / name, "inbox", name, channels=channels, stream=stream)
            except AlreadyExists:
                refused.append(name)
                continue
            assert result.sha256 == sha(local[name]) and result.bytes_sent == len(local[name])
    finally:
        stream.close()
        channels.close()
    assert refused == ["taken.txt"]
    for name, data in local.items():
        if name != "taken.txt":
            assert (receiver.share.root / name).read_bytes() == data
    assert (receiver.share.root / "taken.txt").read_bytes() == b"the receiver's own"
    assert upload_streams["streams"] == 2  # the refusal ended the first; the rest went on a second


def test_a_cancelled_file_keeps_its_chunks_and_a_rerun_sends_only_the_rest(start_peer_at, client, tmp_path):
    receiver = start_peer_at("inbox", {}, allow_uploads=True)
    data = bytes(range(256)) * (4096 * 6)  # 6 MiB
    (tmp_path / "six.bin").write_bytes(data)
    cancel = threading.Event()

    def stop_after_two(p) -> None:
        if p.done_bytes >= 2 * MiB:
            cancel.set()

    with pytest.raises(Cancelled):
        push(client, tmp_path / "six.bin", "inbox", on_progress=stop_after_two, cancel=cancel)
    assert not (receiver.share.root / "six.bin").exists()
    result = push(client, tmp_path / "six.bin", "inbox")
    assert 2 <= result.chunks_skipped < 6 and result.bytes_sent == len(data) - result.chunks_skipped * MiB
    assert (receiver.share.root / "six.bin").read_bytes() == data
    assert not [p for p in receiver.share.root.rglob("*") if is_staging_file(p.name)]


def test_a_stream_the_receiver_ended_between_files_is_opened_anew(start_peer_at, client, tmp_path):
    """A receiver restarted between two files of one `put` (an upgrade): the second went to a
    stream that was gone."""
    receiver = start_peer_at("inbox", {}, allow_uploads=True)
    for name in ("one.txt", "two.txt"):
        (tmp_path / name).write_bytes(name.encode() * 100)
    channels = PeerChannels(None)
    stream = upload_stream(client, "inbox", receiver.tracker.advertise, channels, 60)
    try:
        push(client, tmp_path / "one.txt", "inbox", channels=channels, stream=stream)
        receiver.stop(grace=0)
        again = start_peer_at("inbox", listen=f"127.0.0.1:{receiver.port}", allow_uploads=True)
        under_way = stream._open_now
        assert under_way is not None
        wait_for(under_way.responses.done, timeout=10, what="the stream's end seen")
        result = push(client, tmp_path / "two.txt", "inbox", channels=channels, stream=stream)
    finally:
        stream.close()
        channels.close()
    assert result.bytes_sent == 700 and (again.share.root / "two.txt").read_bytes() == b"two.txt" * 100


def test_a_receiver_of_an_earlier_version_gets_a_half_close_and_a_stream_a_file(tmp_path):
    """A peer not upgraded yet answers complete only after the sender half-closes (and says
    nothing of takes_more_files): a sender that kept the stream open for the next file waited on it."""
    from concurrent import futures

    from peer.chunking import hash_file
    from peer.manifest import Manifest
    from peer.peer_client import PeerConnection
    from peer.upload_stream import UploadStream

    received: dict[str, bytes] = {}
    streams = []

    class EarlierReceiver(peer_pb2_grpc.PeerServiceServicer):
        def Upload(self, request_iterator, context):
            streams.append(1)
            offer = next(request_iterator).offer
            yield pb.UploadResponse(accepted=pb.UploadAccepted())
            data = b"".join(m.chunk.data for m in request_iterator)  # until the half-close
            received[offer.name] = data
            yield pb.UploadResponse(complete=pb.UploadComplete(name=offer.name, sha256=sha(data), bytes_received=len(data)))

    server = grpc.server(futures.ThreadPoolExecutor(4))
    peer_pb2_grpc.add_PeerServiceServicer_to_server(EarlierReceiver(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channels = PeerChannels(None)
    stream = UploadStream(PeerConnection("elder", f"127.0.0.1:{port}", lambda fresh: "ticket", channels), stall_seconds=5)
    try:
        for name in ("a.txt", "b.txt"):
            (tmp_path / name).write_bytes(name.encode() * 50)
            manifest = Manifest.from_hashes(hash_file(tmp_path / name))
            result = stream.send(tmp_path / name, manifest, name, None, None, threading.Event())
            assert result.sha256 == sha(name.encode() * 50)
    finally:
        stream.close()
        channels.close()
        server.stop(0)
    assert received == {"a.txt": b"a.txt" * 50, "b.txt": b"b.txt" * 50} and len(streams) == 2
