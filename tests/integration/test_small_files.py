"""Many one-chunk files over one Download stream a source (peer/small_files.py), end to end
in-process: a real tracker, real PeerService servers, real files on disk."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from pathlib import Path

import grpc
import pytest

from p2p.v1 import peer_pb2 as pb
from p2p_common.errors import AlreadyExists
from peer import service, small_files
from peer.availability import NotHeld
from peer.chunk_store import is_staging_file
from peer.chunk_wire import DOWNLOAD_METHOD, parse_download_response
from peer.transfers import fetch_many, resolve_all

KiB = 1 << 10
MiB = 1 << 20


def small_set(count: int, seed: int = 0) -> dict[str, bytes]:
    """count files of 1 byte to ~40 KiB, different contents, in a few folders."""
    return {
        f"src/d{i % 7}/f{i:03d}.txt": hashlib.sha256(f"{seed}:{i}".encode()).digest() * (1 + i * 37 % 1300) for i in range(count)
    }


@pytest.fixture
def streams_opened(monkeypatch) -> Counter[int]:
    """Download streams each serving peer (by its PeerService) was asked to open."""
    opened: Counter[int] = Counter()
    real = service.PeerServicer._serve_chunks

    def counting(self, request_iterator, context, *rest):
        opened[id(self)] += 1
        return real(self, request_iterator, context, *rest)

    monkeypatch.setattr(service.PeerServicer, "_serve_chunks", counting)
    return opened


def fetched_tree(out: Path, files: dict[str, bytes], ended: list) -> None:
    assert all(e.error is None for e in ended), [e.error for e in ended if e.error]
    assert sorted(str(e.dest.relative_to(out)) for e in ended) == sorted(files)
    for name, content in files.items():
        assert (out / name).read_bytes() == content
    assert not [p for p in out.rglob("*") if is_staging_file(p.name)]


def test_many_small_files_take_one_stream_a_source_and_come_from_both(start_peer_at, client, tmp_path, streams_opened):
    out = tmp_path / "out"
    files = small_set(300)
    start_peer_at("left", files)
    start_peer_at("right", files)
    targets = [(remote, out / remote.name) for remote in resolve_all(client, "src/*")]
    assert len(targets) == 300

    ended = list(fetch_many(client, targets, jobs=4))

    fetched_tree(out, files, ended)
    by_source = Counter(label.split("@")[0] for e in ended for label in e.result.per_source)
    assert set(by_source) == {"left", "right"} and sum(by_source.values()) == 300
    assert sum(streams_opened.values()) == 2  # one a source, for 300 files (it was 300)


def test_a_source_sending_bad_bytes_is_dropped_and_its_files_come_from_the_other(start_peer_at, client, tmp_path):
    out = tmp_path / "out"
    files = small_set(120, seed=1)
    liar = start_peer_at("liar", files, rescan_seconds=3600)  # no rescan mid-corruption
    start_peer_at("honest", files)
    for name in list(files)[::3]:  # bad bytes behind its back, size and mtime kept
        path = liar.share.root / name
        st = path.stat()
        path.write_bytes(bytes(b ^ 0xFF for b in files[name]))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    targets = [(remote, out / remote.name) for remote in resolve_all(client, "src/*")]

    ended = list(fetch_many(client, targets, jobs=4))

    fetched_tree(out, files, ended)
    liars_files = sum(1 for e in ended for label in e.result.per_source if label.startswith("liar@"))
    assert liars_files < 40  # dropped at its first bad file: it is asked for no more


def test_a_source_gone_mid_batch_leaves_the_rest_to_the_other(start_peer_at, client, tmp_path):
    out = tmp_path / "out"
    files = small_set(200, seed=2)
    goner = start_peer_at("goner", files, max_serve_rate=200 * KiB)  # slow enough to be cut mid-way
    start_peer_at("stayer", files, max_serve_rate=2 * MiB)
    targets = [(remote, out / remote.name) for remote in resolve_all(client, "src/*")]
    ended = []
    for e in fetch_many(client, targets, jobs=4):
        ended.append(e)
        if len(ended) == 20:
            goner.server.server.stop(0)  # dies without logging out, streams cut
    fetched_tree(out, files, ended)
    assert any("goner@" in label for e in ended for label in e.result.per_source)


def test_the_only_source_gone_leaves_each_file_a_clear_error(start_peer_at, client, tmp_path):
    out = tmp_path / "out"
    files = small_set(60, seed=3)
    only = start_peer_at("only", files, max_serve_rate=100 * KiB)
    targets = [(remote, out / remote.name) for remote in resolve_all(client, "src/*")]
    ended = []
    for e in fetch_many(client, targets, jobs=4, stall_seconds=5):
        ended.append(e)
        if len(ended) == 1:
            only.server.server.stop(0)
    failed = [e for e in ended if e.error is not None]
    assert all("could not be fetched" in str(e.error) for e in failed)
    assert len(ended) == 60 and 0 < len(failed) < 60
    for e in failed:
        assert not e.dest.exists()
    for e in ended:
        if e.result is not None:
            assert e.dest.read_bytes() == files[str(e.dest.relative_to(out))]
    assert not [p for p in out.rglob("*") if is_staging_file(p.name)]


def test_small_and_large_files_and_a_taken_destination_in_one_batch(start_peer_at, client, tmp_path):
    out = tmp_path / "out"
    files = small_set(40, seed=4) | {"src/big.bin": os.urandom(3 * MiB + 5), "src/empty.txt": b""}
    start_peer_at("mixed", files)
    targets = [(remote, out / remote.name) for remote in resolve_all(client, "src/*")]
    taken = out / "src/d0/f000.txt"
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"somebody else's file")

    ended = {str(e.dest.relative_to(out)): e for e in fetch_many(client, targets, jobs=4)}

    assert isinstance(ended.pop("src/d0/f000.txt").error, AlreadyExists)
    assert taken.read_bytes() == b"somebody else's file"
    del files["src/d0/f000.txt"]
    fetched_tree(out, files, list(ended.values()))
    again = list(fetch_many(client, [t for t in targets if t[1] != taken], jobs=4))
    assert all(e.result is not None and e.result.already_there for e in again)


def test_stopping_a_batch_stops_its_streams_and_leaves_no_staged_file(start_peer_at, client, tmp_path):
    out = tmp_path / "out"
    files = small_set(200, seed=5)
    start_peer_at("slow", files, max_serve_rate=100 * KiB)
    targets = [(remote, out / remote.name) for remote in resolve_all(client, "src/*")]
    batch = fetch_many(client, targets, jobs=4)
    first = next(batch)
    assert "small-slow" in {t.name for t in threading.enumerate()}  # its pipe from the peer, under way
    batch.close()  # as Ctrl-C does
    assert first.result is not None and first.dest.read_bytes() == files[str(first.dest.relative_to(out))]
    left = {t.name for t in threading.enumerate()} & {"small-slow", "stall-watch", *(f"job-{i}" for i in range(4))}
    assert not left  # its pipe, watchdog and jobs ended (the serving peer's RPC threads stay, as a pool's do)
    for p in out.rglob("*"):
        assert not is_staging_file(p.name)
        if p.is_file():
            assert p.read_bytes() == files[str(p.relative_to(out))]


def test_a_stream_names_a_file_each_request_and_one_not_held_is_answered_so(start_peer_at, client):
    files = {"a.txt": b"alpha", "b.txt": b"bravo"}
    node = start_peer_at("wire", files)
    a, b = (hashlib.sha256(files[n]).hexdigest() for n in ("a.txt", "b.txt"))
    missing = hashlib.sha256(b"nobody has this").hexdigest()
    with grpc.insecure_channel(f"127.0.0.1:{node.port}") as channel:
        call = channel.stream_stream(
            DOWNLOAD_METHOD,
            request_serializer=pb.DownloadRequest.SerializeToString,
            response_deserializer=parse_download_response,
        )
        requests = [
            pb.DownloadRequest(sha256=a, chunk_indexes=[0]),
            pb.DownloadRequest(sha256=missing, chunk_indexes=[0]),
            pb.DownloadRequest(sha256=b, chunk_indexes=[0]),
            pb.DownloadRequest(chunk_indexes=[0]),  # still b
        ]
        answers = list(call(iter(requests), metadata=(("authorization", f"Bearer {client.ticket('wire')}"),)))
    assert bytes(answers[0][1]) == b"alpha"
    assert isinstance(answers[1], NotHeld) and answers[1].held.count() == 0
    assert bytes(answers[2][1]) == b"bravo" and bytes(answers[3][1]) == b"bravo"


def test_the_first_request_must_name_a_file_held(start_peer_at, client):
    node = start_peer_at("wire2", {"a.txt": b"alpha"})
    with grpc.insecure_channel(f"127.0.0.1:{node.port}") as channel:
        call = channel.stream_stream(DOWNLOAD_METHOD, request_serializer=pb.DownloadRequest.SerializeToString)
        request = pb.DownloadRequest(sha256=hashlib.sha256(b"nobody has this").hexdigest(), chunk_indexes=[0])
        with pytest.raises(grpc.RpcError) as err:
            list(call(iter([request]), metadata=(("authorization", f"Bearer {client.ticket('wire2')}"),)))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_only_files_of_one_chunk_with_a_whole_source_take_this_path(client):
    from peer.manifest import Manifest
    from peer.tracker_client import RemoteFile, Source

    def remote(size: int, partial: bool = False) -> RemoteFile:
        digest = hashlib.sha256(b"x" * size).hexdigest()
        implied = Manifest.implied(digest, size, MiB)
        chunk_list = implied.chunk_list_sha256 if implied else ""
        return RemoteFile(digest, "f", size, MiB, chunk_list, (Source("p", "127.0.0.1:1", "f", partial),))

    assert small_files.implied_manifest(remote(1)) is not None
    assert small_files.implied_manifest(remote(MiB)) is not None
    assert small_files.implied_manifest(remote(0)) is None  # nothing to fetch: the full path writes it
    assert small_files.implied_manifest(remote(MiB + 1)) is None
    assert small_files._whole_sources(remote(5, partial=True)) == []
