"""Peers end to end in-process: real tracker, real PeerService servers, real files on disk."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import stat
import threading
import time
from pathlib import Path

import grpc
import pytest

from p2p.v1 import tracker_pb2 as tpb
from p2p_common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    P2PError,
    PermissionDenied,
    ResourceExhausted,
)
from peer import busy_wait, chunking, downloader, transfer_slots
from peer.chunk_store import PartialFile
from peer.downloader import Progress
from peer.manifest import Manifest
from peer.node import PeerNode
from peer.throttle import Throttle
from peer.transfers import fetch, places_of, push, resolve
from tests.helpers import wait_for

MiB = 1 << 20


def data_of(size: int, seed: int = 0) -> bytes:
    """Deterministic incompressible-looking bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 1024
        counter += 1
    return bytes(out[:size])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_search_finds_files_of_three_peers(start_peer_at, client):
    for name in ["a", "b", "c"]:
        start_peer_at(name, {f"docs/{name}.txt": f"from {name}".encode(), "common.bin": b"same everywhere"})
    names = {f.name for f in client.query("")}
    assert {"docs/a.txt", "docs/b.txt", "docs/c.txt", "common.bin"} <= names
    common = resolve(client, "common.bin")
    assert sorted(s.peer_name for s in common.sources) == ["a", "b", "c"]


@pytest.mark.parametrize("size", [0, 1, MiB, MiB + 1, 5 * MiB + 123])
def test_get_from_one_peer_various_sizes(start_peer_at, client, tmp_path, size):
    content = data_of(size, seed=size)
    start_peer_at("solo", {"file.bin": content})
    remote = resolve(client, "file.bin")
    result = fetch(client, remote, tmp_path / "out" / "file.bin")
    assert (tmp_path / "out" / "file.bin").read_bytes() == content
    assert result.bytes_received == size and sha((tmp_path / "out" / "file.bin").read_bytes()) == remote.sha256
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["file.bin"]  # no staging files left


def test_get_from_three_peers_uses_all(start_peer_at, client, tmp_path):
    content = data_of(48 * MiB, seed=3)
    for name in ("p1", "p2", "p3"):
        start_peer_at(name, {"big.iso": content})
    remote = resolve(client, "big.iso")
    assert len(remote.sources) == 3
    result = fetch(client, remote, tmp_path / "big.iso")
    assert sha((tmp_path / "big.iso").read_bytes()) == sha(content)
    assert len(result.per_source) == 3 and sum(result.per_source.values()) == 48


def test_several_files_at_once_within_one_rate_cap_and_a_failure_stops_no_other(start_peer_at, client, tmp_path):
    from peer.transfers import fetch_many

    class CountingThrottle(Throttle):
        taken = 0

        def take(self, size: int) -> float:
            self.taken += size
            return super().take(size)

    files = {f"album/{i:02d}.flac": data_of(MiB + 1000 * i, seed=i) for i in range(6)}
    start_peer_at("band", files)
    targets = [(resolve(client, name), tmp_path / name) for name in files]
    (tmp_path / "album").mkdir()
    (tmp_path / "album/03.flac").write_bytes(b"somebody else's file")
    cap = CountingThrottle(1 << 30)
    ended = list(fetch_many(client, targets, jobs=3, throttle=cap))
    assert sorted(e.dest.name for e in ended) == sorted(p.name for _, p in targets)
    failed = [e for e in ended if e.error is not None]
    assert [e.dest.name for e in failed] == ["03.flac"] and isinstance(failed[0].error, AlreadyExists)
    for name, content in files.items():
        if name != "album/03.flac":
            assert (tmp_path / name).read_bytes() == content
    assert cap.taken == sum(len(c) for n, c in files.items() if n != "album/03.flac")  # every file within the one cap


def test_a_batch_lists_each_folder_once_and_still_reuses_an_earlier_version_staged_there(
    start_peer_at, client, tmp_path, monkeypatch
):
    """Listed once a file, a folder of 20,000 files fetched in one `get --all` was listed 20,000 times."""
    from peer import chunk_store
    from peer.chunk_store import PartialFile, staging_paths
    from peer.chunking import hash_file
    from peer.manifest import Manifest
    from peer.transfers import fetch_many

    files = {f"album/{i:02d}.flac": data_of(MiB + 1000 * i, seed=i) for i in range(6)}
    start_peer_at("band", files)
    targets = [(resolve(client, name), tmp_path / name) for name in files]
    (tmp_path / "album").mkdir()
    old = files["album/02.flac"][:MiB] + b"the version before"  # a get of it was cut short
    (tmp_path / "old").write_bytes(old)
    old_manifest = Manifest.from_hashes(hash_file(tmp_path / "old", chunk_size=MiB))
    cut_short = PartialFile(tmp_path / "album/02.flac", old_manifest)
    cut_short.write_chunk(0, old[:MiB])
    cut_short.close()
    listed: list[Path] = []
    real_listing = chunk_store._staged_in
    monkeypatch.setattr(chunk_store, "_staged_in", lambda folder: listed.append(folder) or real_listing(folder))

    ended = {e.dest.name: e for e in fetch_many(client, targets, jobs=3)}
    assert listed == [tmp_path / "album"]
    for name, content in files.items():
        assert (tmp_path / name).read_bytes() == content
    result = ended["02.flac"].result
    assert result is not None and result.chunks_reused == 1 and result.chunks_fetched == 1
    assert not any(p.exists() for p in staging_paths(tmp_path / "album/02.flac", old_manifest.sha256))


def test_spare_sources_cost_nothing_until_one_is_needed(start_peer_at, client, tmp_path, monkeypatch):
    """With one source streaming at a time, the others get no ticket and no connection; when the
    streaming one dies, the next steps in."""
    monkeypatch.setattr(downloader, "MAX_ACTIVE_SOURCES", 1)
    content = data_of(64 * MiB, seed=7)
    nodes = {name: start_peer_at(name, {"set.tar": content}) for name in ("q1", "q2", "q3")}
    remote = resolve(client, "set.tar")
    first = remote.sources[0].peer_name
    killed: list[str] = []

    def kill_first(p: Progress) -> None:
        if not killed and p.done_bytes > 0:
            killed.append(first)
            nodes[first].server.server.stop(0)

    result = fetch(client, remote, tmp_path / "set.tar", kill_first)
    assert sha((tmp_path / "set.tar").read_bytes()) == sha(content)
    second = remote.sources[1].peer_name
    assert killed and {label.split("@")[0] for label in result.per_source} == {first, second}
    assert set(client._tickets) == {first, second}  # the third was never asked for


def test_peer_killed_mid_download_the_rest_comes_from_others(start_peer_at, client, tmp_path):
    content = data_of(128 * MiB, seed=4)
    nodes = [start_peer_at(name, {"movie.mkv": content}) for name in ("k1", "k2", "k3")]
    remote = resolve(client, "movie.mkv")
    killed_at: list[int] = []

    def kill_one(p: Progress) -> None:
        if not killed_at and p.done_bytes >= 8 * MiB:
            killed_at.append(p.done_bytes)
            nodes[0].server.server.stop(0)  # dies without logging out

    result = fetch(client, remote, tmp_path / "movie.mkv", kill_one)
    assert killed_at and killed_at[0] < 96 * MiB, "the peer must die while much is left to fetch"
    assert sha((tmp_path / "movie.mkv").read_bytes()) == sha(content)
    assert not any(label.startswith("k1@") for label in result.dropped)  # asked again meanwhile (a restart?), not dropped
    assert {label.split("@")[0] for label in result.per_source} == {"k1", "k2", "k3"}


def test_a_source_restarted_mid_download_is_asked_again_and_finishes_it(start_peer_at, client, tmp_path, monkeypatch):
    """The only seed restarts (an upgrade, a crash and its service manager) while a download runs:
    the download lost it for good and failed ("server unreachable"); now a source that had
    delivered is asked again, as a busy one is, for up to RECONNECT_SECONDS."""
    monkeypatch.setattr(busy_wait, "BUSY_RETRY_SECONDS", 0.2)
    content = data_of(6 * MiB, seed=31)
    seed = start_peer_at("restarter", {"iso.img": content}, max_serve_rate=2 * MiB)
    remote = resolve(client, "iso.img")
    restarted: list[PeerNode] = []

    def restart_once(p: Progress) -> None:
        if not restarted and p.done_bytes >= MiB:
            seed.stop(grace=0)  # gone mid-stream
            restarted.append(start_peer_at("restarter", listen=f"127.0.0.1:{seed.port}", max_serve_rate=2 * MiB))

    result = fetch(client, remote, tmp_path / "iso.img", restart_once)
    assert restarted and (tmp_path / "iso.img").read_bytes() == content
    assert result.dropped == {} and sum(result.per_source.values()) == 6


def test_corrupt_peer_is_detected_and_routed_around(start_peer_at, client, tmp_path):
    content = data_of(24 * MiB, seed=5)
    liar = start_peer_at("liar", {"data.bin": content}, rescan_seconds=3600)  # no rescan mid-corruption
    start_peer_at("honest", {"data.bin": content})
    # corrupt the liar's copy behind its back, keeping size and mtime, so it serves bad bytes
    path = liar.share.root / "data.bin"
    st = path.stat()
    with open(path, "r+b") as f:
        for offset in range(0, len(content), MiB):
            f.seek(offset + 100)
            f.write(b"\xff" * 16)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = fetch(client, resolve(client, "data.bin"), tmp_path / "data.bin")
    assert sha((tmp_path / "data.bin").read_bytes()) == sha(content)
    assert "hash mismatch" in result.dropped.get(f"liar@{liar.tracker.advertise}", "")
    assert any(label.startswith("honest@") for label in result.per_source)


def test_interrupted_get_resumes_fetching_only_what_was_missing(start_peer_at, client, tmp_path):
    content = data_of(32 * MiB, seed=6)
    start_peer_at("src", {"resume.bin": content})
    remote = resolve(client, "resume.bin")
    dest = tmp_path / "resume.bin"

    class Interrupt(Exception):
        pass

    def interrupt(p: Progress) -> None:
        if p.done_bytes >= 10 * MiB:
            raise Interrupt

    with pytest.raises(Interrupt):
        fetch(client, remote, dest, interrupt)
    assert not dest.exists()
    result = fetch(client, remote, dest)
    assert dest.read_bytes() == content
    assert result.chunks_reused >= 10
    assert result.bytes_received == (32 - result.chunks_reused) * MiB


def test_get_of_unknown_or_ambiguous_names(start_peer_at, client):
    start_peer_at("p", {"a/report.txt": b"1", "b/report.txt": b"2"})
    with pytest.raises(NotFound):
        resolve(client, "missing.txt")
    with pytest.raises(Exception, match="2 files match"):
        resolve(client, "report.txt")
    assert resolve(client, "a/report.txt").sha256 == sha(b"1")


def test_a_name_typed_in_another_unicode_form_is_still_the_exact_one(start_peer_at, client):
    """Search ignores accents, so "Café.txt" also matches "Cafe.txt"; typed composed, it still names
    exactly the "Café.txt" a Mac shared decomposed."""
    start_peer_at("mac", {"Cafe\u0301.txt": b"the mac's", "Cafe.txt": b"another"})
    assert resolve(client, "Caf\u00e9.txt").sha256 == sha(b"the mac's")
    assert resolve(client, "Cafe.txt").sha256 == sha(b"another")
    with pytest.raises(Exception, match="2 files match"):
        resolve(client, "cafe.txt")  # exact names are exact about case: both match


def test_a_content_shared_under_several_names_is_fetched_under_the_one_asked_for(start_peer_at, client, tmp_path):
    start_peer_at("twins", {"first.txt": b"same", "docs/second.txt": b"same"})
    assert resolve(client, "second.txt").name == "docs/second.txt"
    assert resolve(client, "docs/second.txt").name == "docs/second.txt"
    assert resolve(client, "first.txt").name == "first.txt"


def test_a_name_among_more_matches_than_a_page_is_still_found_exactly(start_peer_at, client, tracker):
    """`get report.txt` where 1,500 other names contain it: the first page of the substring search
    (sha256 order) may not hold the file named so; an empty name is no name."""
    from tests.helpers import TrackerClientForTests, file_entry

    content = next(c for i in range(100) if sha(c := f"the report {i}".encode()).startswith("f"))  # sorts late
    start_peer_at("office", {"report.txt": content})
    crowd = TrackerClientForTests(f"127.0.0.1:{tracker.port}")
    try:
        crowd.login("crowd", address="127.0.0.1:9")
        entries = [file_entry(f"v{i}-report.txt", f"{i}".encode()) for i in range(1500)]
        crowd.send_index(tpb.SendIndexRequest(mode=tpb.INDEX_MODE_REPLACE, add=entries))
        assert resolve(client, "report.txt").sha256 == sha(content)
        with pytest.raises(FailedPrecondition, match="more than 1000 files match 'report'"):
            resolve(client, "report")
        with pytest.raises(InvalidArgument, match="empty name"):
            resolve(client, "")
    finally:
        crowd.close()


def test_get_by_the_sha256_digits_search_shows(start_peer_at, client):
    # two contents whose sha256 share their first 8 digits (found by trying c0, c1, ...)
    start_peer_at("p", {"one.txt": b"c17439", "two.txt": b"c24164", "deadbeef.txt": b"named like hex"})
    assert sha(b"c17439")[:8] == sha(b"c24164")[:8] == "c51deb06"
    assert resolve(client, sha(b"c17439")[:12]).name == "one.txt"
    assert resolve(client, sha(b"c24164")[:9].upper()).name == "two.txt"
    ambiguous = r"2 files have a sha256 starting with c51deb06: two.txt \(c51deb064c76\), one.txt"
    with pytest.raises(FailedPrecondition, match=ambiguous):
        resolve(client, "c51deb06")
    assert resolve(client, "deadbeef").name == "deadbeef.txt"  # hex digits that start no sha256: a name
    with pytest.raises(NotFound, match="and no shared content's sha256 starts with it"):
        resolve(client, "0123456789")


def test_fetched_file_in_a_serving_share_becomes_available(start_peer_at, client):
    start_peer_at("origin", {"song.mp3": b"la la la"})
    downloader = start_peer_at("downloader", {})
    fetch(client, resolve(client, "song.mp3"), downloader.share.root / "song.mp3")
    wait_for(lambda: len(resolve(client, "song.mp3").sources) == 2, timeout=10, what="the downloaded copy to be published")


def test_share_changes_are_published(start_peer_at, client):
    node = start_peer_at("watcher", {"old.txt": b"old"})
    (node.share.root / "new.txt").write_bytes(b"new file")
    wait_for(lambda: client.query("new.txt"), timeout=10, what="the new file to be published")
    (node.share.root / "old.txt").unlink()
    wait_for(lambda: not client.query("old.txt"), timeout=10, what="the removed file to vanish")
    (node.share.root / "new.txt").write_bytes(b"changed content")
    wait_for(lambda: [f.sha256 for f in client.query("new.txt")] == [sha(b"changed content")], timeout=10, what="the change")


def test_restart_reuses_the_hash_cache(start_peer_at, tmp_path, monkeypatch):
    from peer import chunking, share

    node = start_peer_at("cached", {"one.bin": data_of(MiB, 1), "two.bin": data_of(2 * MiB, 2)})
    node.stop(grace=0)
    calls: list[str] = []
    real = chunking.hash_file
    monkeypatch.setattr(share.chunking, "hash_file", lambda p, *a: calls.append(p.name) or real(p, *a))
    again = start_peer_at("cached")
    assert {f.name for f in again.share.files()} == {"one.bin", "two.bin"}
    assert calls == []


def test_upload_publishes_into_the_receivers_share(start_peer_at, client, tmp_path):
    receiver = start_peer_at("inbox", {}, allow_uploads=True)
    content = data_of(3 * MiB + 7, seed=9)
    local = tmp_path / "report.pdf"
    local.write_bytes(content)
    result = push(client, local, "inbox", "incoming/report.pdf")
    assert result.bytes_sent == len(content) and result.chunks_skipped == 0
    assert (receiver.share.root / "incoming" / "report.pdf").read_bytes() == content
    wait_for(lambda: client.query("incoming/report.pdf"), timeout=10, what="the upload to be published")


def test_an_upload_to_an_account_serving_from_two_places_goes_where_it_is_told(start_peer_at, client, tmp_path):
    """`put --to dana` picked one of dana's laptop and desktop, unsaid; now dana@host:port names one."""
    (tmp_path / "desktop").mkdir()
    start_peer_at("dana", {}, allow_uploads=True)
    desktop = start_peer_at("dana", {}, allow_uploads=True, share=tmp_path / "desktop")
    local = tmp_path / "notes.txt"
    local.write_bytes(b"for the desktop")
    with pytest.raises(FailedPrecondition, match=re.escape("dana serves from 2 places: dana@127.0.0.1:")):
        push(client, local, "dana")
    with pytest.raises(NotFound, match=re.escape("does not serve at 127.0.0.1:1;")):
        push(client, local, "dana@127.0.0.1:1")
    push(client, local, f"dana@{desktop.tracker.advertise}")
    assert (tmp_path / "desktop/notes.txt").read_bytes() == b"for the desktop"
    assert not (tmp_path / "share-dana/notes.txt").exists()


def test_an_upload_to_a_peer_restarted_on_another_port_goes_to_the_one_that_answers(start_peer_at, client, tmp_path):
    """Killed and started again (on an ephemeral port), a peer is listed at its old place too
    until that session's lease runs out: `put --to erin` said "erin serves from 2 places"."""
    (tmp_path / "again").mkdir()
    killed = start_peer_at("erin", {}, allow_uploads=True)
    killed.server.server.stop(0)  # dies without logging out: still listed
    again = start_peer_at("erin", {}, allow_uploads=True, share=tmp_path / "again")
    assert len(places_of(client, "erin")) == 2
    local = tmp_path / "notes.txt"
    local.write_bytes(b"for the live one")
    push(client, local, "erin")
    assert (tmp_path / "again/notes.txt").read_bytes() == b"for the live one"
    assert again.tracker.advertise != killed.tracker.advertise


def test_interrupted_upload_resumes(start_peer_at, client, tmp_path):
    from p2p.v1 import peer_pb2 as pb
    from peer import chunking
    from peer.manifest import Manifest
    from peer.peer_client import PeerChannels
    from peer.transfers import connect, find_peer

    receiver = start_peer_at("inbox", {}, allow_uploads=True)
    content = data_of(8 * MiB, seed=10)
    local = tmp_path / "video.mp4"
    local.write_bytes(content)
    m = Manifest.from_hashes(chunking.hash_file(local))
    channels = PeerChannels(client.tls)
    conn = connect(client, "inbox", find_peer(client, "inbox")[1], channels)

    def half() -> object:
        yield pb.UploadRequest(
            offer=pb.UploadOffer(
                name="video.mp4", size=m.size, sha256=m.sha256, chunk_size=m.chunk_size, chunk_digests=list(m.chunk_digests)
            )
        )
        for i in range(4):
            yield pb.UploadRequest(chunk=pb.UploadChunk(index=i, data=content[i * MiB : (i + 1) * MiB]))

    with pytest.raises(grpc.RpcError) as info:
        list(conn.upload(half()))
    channels.close()
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "4 chunks missing" in info.value.details()
    assert not (receiver.share.root / "video.mp4").exists()
    result = push(client, local, "inbox")
    assert result.chunks_skipped == 4 and result.bytes_sent == 4 * MiB
    assert (receiver.share.root / "video.mp4").read_bytes() == content


def test_a_file_written_to_while_it_is_sent_is_said_to_have_changed(start_peer_at, client, tmp_path):
    receiver = start_peer_at("inbox", {}, allow_uploads=True)
    local = tmp_path / "log.txt"
    local.write_bytes(data_of(3 * MiB, seed=14))

    def append_after_the_first_chunk(progress: Progress) -> None:
        if progress.done_bytes == MiB:  # read and sent; the last chunk is read later
            with open(local, "r+b") as f:  # rewritten in place and grown (so size tells, whatever mtime's grain)
                f.seek(2 * MiB)
                f.write(b"a line logged meanwhile")
                f.seek(0, os.SEEK_END)
                f.write(b"and another")

    with pytest.raises(FailedPrecondition, match=r"log\.txt changed while it was being sent"):
        push(client, local, "inbox", on_progress=append_after_the_first_chunk)
    assert not (receiver.share.root / "log.txt").exists()


def test_upload_refused_when_not_allowed_or_too_large(start_peer_at, client, tmp_path):
    start_peer_at("closed", {})
    start_peer_at("small", {}, allow_uploads=True, max_upload_bytes=1000)
    local = tmp_path / "f.bin"
    local.write_bytes(b"x" * 5000)
    with pytest.raises(PermissionDenied, match="does not accept uploads"):
        push(client, local, "closed")
    with pytest.raises(ResourceExhausted, match="at most 1000"):
        push(client, local, "small")
    with pytest.raises(NotFound, match="not online"):
        push(client, local, "nobody")


def test_an_upload_where_a_file_stands_for_its_folder_or_a_folder_for_it_is_refused(start_peer_at, client, tmp_path):
    """FAILED_PRECONDITION naming the obstacle (it was UNKNOWN, the receiver's own path in the
    message and a traceback in its log); nothing is written on either side."""
    receiver = start_peer_at("inbox", {"notes": b"a file", "music/song.mp3": b"la"}, allow_uploads=True)
    local = tmp_path / "f.bin"
    local.write_bytes(b"x" * 5000)
    refused = r"inbox: notes is a file in this share, so notes/f\.bin cannot go under it"
    with pytest.raises(FailedPrecondition, match=refused) as info:
        push(client, local, "inbox", name="notes/f.bin")
    assert str(receiver.share.root) not in str(info.value)
    with pytest.raises(FailedPrecondition, match="music is a folder in this share; send the file under another name"):
        push(client, local, "inbox", name="music")
    assert sorted(str(p.relative_to(receiver.share.root)) for p in receiver.share.root.rglob("*") if ".p2p" not in p.parts) == [
        "music",
        "music/song.mp3",
        "notes",
    ]


def test_only_lying_sources_give_a_clear_error_and_no_file(start_peer_at, client, tmp_path):
    content = data_of(3 * MiB, seed=11)
    # no rescan while the file is corrupted in place (one between the write and the utime saw a
    # file being written, and unpublished it)
    liar = start_peer_at("liar", {"x.bin": content}, rescan_seconds=3600)
    path = liar.share.root / "x.bin"
    st = path.stat()
    with open(path, "r+b") as f:
        f.write(b"\x00" * 64)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(P2PError, match="hash mismatch"):
        fetch(client, resolve(client, "x.bin"), tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists()


def test_get_of_a_file_already_there_moves_nothing(start_peer_at, client, tmp_path):
    content = data_of(3 * MiB, seed=12)
    start_peer_at("src", {"have.bin": content})
    dest = tmp_path / "have.bin"
    first = fetch(client, resolve(client, "have.bin"), dest)
    assert first.bytes_received == len(content)
    again = fetch(client, resolve(client, "have.bin"), dest)
    assert again.bytes_received == 0 and again.chunks_fetched == 0 and dest.read_bytes() == content
    dest.write_bytes(b"something else")  # a different file of that name is kept...
    with pytest.raises(AlreadyExists, match="already exists with other content"):
        fetch(client, resolve(client, "have.bin"), dest)
    assert dest.read_bytes() == b"something else"
    replaced = fetch(client, resolve(client, "have.bin"), dest, replace=True)  # ...unless asked (--force)
    assert replaced.bytes_received == len(content) and dest.read_bytes() == content


def test_get_never_replaces_a_device_or_pipe_at_the_destination(start_peer_at, client, tmp_path):
    start_peer_at("src", {"song.mp3": b"la la la"})
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for replace in (False, True):  # --force replaces a different file, never a device (/dev/null, as root)
        with pytest.raises(FailedPrecondition, match="is a device, pipe or socket"):
            fetch(client, resolve(client, "song.mp3"), pipe, replace=replace)
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


def test_a_download_rate_cap_holds_across_sources(start_peer_at, client, tmp_path):
    content = data_of(4 * MiB, seed=21)
    for name in ("r1", "r2"):
        start_peer_at(name, {"capped.bin": content})
    started = time.monotonic()
    result = fetch(client, resolve(client, "capped.bin"), tmp_path / "capped.bin", throttle=Throttle(2 * MiB))
    assert (tmp_path / "capped.bin").read_bytes() == content and len(result.per_source) >= 1
    assert time.monotonic() - started >= 2.0 - 0.25  # 4 MiB at 2 MiB/s, less the burst


def test_an_upload_rate_cap_holds(start_peer_at, client, tmp_path):
    inbox = start_peer_at("inbox", {}, allow_uploads=True)
    local = tmp_path / "capped.dat"
    local.write_bytes(content := data_of(4 * MiB, seed=22))
    started = time.monotonic()
    push(client, local, "inbox", throttle=Throttle(2 * MiB))
    assert (inbox.share.root / "capped.dat").read_bytes() == content
    assert time.monotonic() - started >= 2.0 - 0.25  # 4 MiB at 2 MiB/s, less the burst


def test_a_serve_rate_caps_what_a_peer_sends_to_all_downloaders_together(start_peer_at, client, tmp_path):
    """8 MiB/s, of which a quarter second's worth goes at once: one 8 MiB download cannot end
    before 0.75 s, two at once (16 MiB) not before 1.75 s. Lower bounds: a slow machine only
    takes longer."""
    content = data_of(8 * MiB, seed=13)
    start_peer_at("capped", {"slow.bin": content}, max_serve_rate=8 * MiB)
    remote = resolve(client, "slow.bin")
    started = time.monotonic()
    fetch(client, remote, tmp_path / "one.bin")
    assert time.monotonic() - started >= 0.75
    assert sha((tmp_path / "one.bin").read_bytes()) == sha(content)

    started = time.monotonic()
    pair = [threading.Thread(target=fetch, args=(client, remote, tmp_path / f"two-{i}.bin")) for i in range(2)]
    for t in pair:
        t.start()
    for t in pair:
        t.join(timeout=60)
    assert time.monotonic() - started >= 1.75
    assert all(sha((tmp_path / f"two-{i}.bin").read_bytes()) == sha(content) for i in range(2))


def test_a_peer_sharing_a_content_twice_is_one_source_and_this_downloads_own_partial_copy_none(start_peer_at, client):
    from peer.peer_client import PeerChannels
    from peer.transfers import _sources

    start_peer_at("twice", {"a/song.mp3": b"la la la", "b/same song.mp3": b"la la la"})
    (remote,) = client.query(sha256=hashlib.sha256(b"la la la").hexdigest())
    assert sorted(s.name for s in remote.sources) == ["a/song.mp3", "b/same song.mp3"]
    channels = PeerChannels(None)  # connections made on a first call only: none here
    first = remote.sources[0]
    assert [s.label for s in _sources(client, remote, channels)] == [f"{first.peer_name}@{first.address}"]
    own = dataclasses.replace(first, peer_name=client.name, partial=True)  # this very download, as the tracker sees it
    with_own = dataclasses.replace(remote, sources=(own, *remote.sources))
    assert [s.peer_name for s in _sources(client, with_own, channels)] == ["twice"]
    channels.close()


def test_an_upload_another_upload_is_writing_is_refused_without_the_receivers_paths(start_peer_at, client, tmp_path):
    """Two senders of one file at once: the second was told "another transfer is already writing
    /home/inbox/share/up.bin", the receiver's own path."""
    inbox = start_peer_at("inbox", allow_uploads=True)
    content = data_of(2 * MiB + 5, seed=21)
    (tmp_path / "up.bin").write_bytes(content)
    manifest = Manifest.from_hashes(chunking.hash_file(tmp_path / "up.bin"))
    first = PartialFile(inbox.share.root / "up.bin", manifest)  # as the first sender's upload holds it
    try:
        with pytest.raises(FailedPrecondition) as refused:
            push(client, tmp_path / "up.bin", "inbox")
        assert "another upload of up.bin is under way here; send it again once it ends" in str(refused.value)
        assert str(inbox.share.root) not in str(refused.value)
    finally:
        first.close()
    assert push(client, tmp_path / "up.bin", "inbox").sha256 == sha(content)  # once it ends


def test_a_peer_serving_all_the_transfers_it_allows_is_asked_again_until_one_ends(
    start_peer_at, client, tmp_path, caplog, monkeypatch
):
    """A flash crowd larger than a seed's --max-transfers (a class fetching the lecture, or
    handing in work at the deadline) waits for a slot instead of failing with "try again
    shortly" (for up to BUSY_GIVE_UP_SECONDS)."""
    monkeypatch.setattr(transfer_slots, "LATEST_ASK_SECONDS", 0.2)  # what the seed tells the refused: ask again then
    caplog.set_level(logging.INFO, logger="p2p.rpc")
    content = data_of(3 * MiB, seed=11)
    start_peer_at("lecturer", {"lecture.mp4": content}, max_transfers=1, max_serve_rate=2 * MiB, allow_uploads=True)
    remote = resolve(client, "lecture.mp4")

    def holding_the_slot(dest: Path) -> threading.Thread:
        """A download of dest under way: it holds the seed's one slot for ~1.5 s."""
        streaming = threading.Event()

        def started(p: Progress) -> None:
            if p.done_bytes:
                streaming.set()

        thread = threading.Thread(target=fetch, args=(client, remote, dest, started))
        thread.start()
        assert streaming.wait(10), "the first download never started"
        return thread

    first = holding_the_slot(tmp_path / "a.mp4")
    second = fetch(client, remote, tmp_path / "b.mp4")  # refused, then let in once the first ends
    first.join(30)
    assert (tmp_path / "a.mp4").read_bytes() == content == (tmp_path / "b.mp4").read_bytes()
    assert second.dropped == {} and sum(second.per_source.values()) == 3

    def refused(method: str) -> bool:
        lines = [r.getMessage() for r in caplog.records if f"/p2p.v1.PeerService/{method} " in r.getMessage()]
        return any("status=RESOURCE_EXHAUSTED" in line for line in lines)

    assert refused("Download")  # the second was refused at first

    first = holding_the_slot(tmp_path / "e.mp4")
    (tmp_path / "homework.txt").write_bytes(b"my homework")
    seen: list[Progress] = []
    handed_in = push(client, tmp_path / "homework.txt", "lecturer", on_progress=seen.append)  # refused, then let in
    first.join(30)
    assert handed_in.sha256 == sha(b"my homework") and refused("Upload")
    assert seen[0].busy_sources == 1 and (seen[-1].done_bytes, seen[-1].busy_sources) == (11, 0)  # its bar said why

    monkeypatch.setattr(busy_wait, "BUSY_GIVE_UP_SECONDS", 0.3)  # shorter than the slot is held
    first = holding_the_slot(tmp_path / "c.mp4")
    with pytest.raises(P2PError, match=r"busy for 0\.3 s: .*already serving 1 transfer;"):
        fetch(client, remote, tmp_path / "d.mp4")
    first.join(30)
    assert not (tmp_path / "d.mp4").exists()
