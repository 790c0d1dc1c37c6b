"""The hand-written Download wire path agrees with the generated protobuf code both ways."""

from __future__ import annotations

import pytest

from p2p.v1 import peer_pb2 as pb
from peer.availability import ChunkMap, NotHeld
from peer.chunk_wire import encode_download_response, encode_not_held, parse_download_response


@pytest.mark.parametrize(("index", "size"), [(0, 1), (1, 100), (127, 5), (128, 5), (300_000, 1 << 20)])
def test_round_trip_with_generated_code(index, size):
    data = bytes(i % 251 for i in range(size))
    ours = encode_download_response(index, data)
    theirs = pb.DownloadResponse.FromString(ours)
    assert (theirs.index, theirs.data) == (index, data)
    parsed_index, view = parse_download_response(pb.DownloadResponse(index=index, data=data).SerializeToString())
    assert (parsed_index, bytes(view)) == (index, data)


def test_unknown_fields_are_skipped():
    raw = encode_download_response(7, b"abc") + bytes([13 << 3 | 0, 5]) + bytes([14 << 3 | 2, 2]) + b"zz"
    index, view = parse_download_response(raw)
    assert (index, bytes(view)) == (7, b"abc")


def test_truncated_messages_are_errors():
    raw = encode_download_response(7, b"abcdef")
    with pytest.raises((ValueError, IndexError)):
        parse_download_response(raw[:-2])


def test_not_held_answers_carry_the_chunk_map_both_ways():
    held = ChunkMap.of([0, 2, 9], 12)
    theirs = pb.DownloadResponse.FromString(encode_not_held(5, held))
    assert (theirs.index, theirs.not_held, theirs.data) == (5, True, b"")
    assert [i for i in range(12) if i in ChunkMap(theirs.held_chunks)] == [0, 2, 9]
    answer = parse_download_response(pb.DownloadResponse(index=5, not_held=True, held_chunks=held.bits).SerializeToString())
    assert isinstance(answer, NotHeld)
    assert answer.index == 5 and [i for i in range(12) if i in answer.held] == [0, 2, 9]
    assert answer.held.count() == 3 and ChunkMap.of(range(1001), 1001).count() == 1001 and ChunkMap().count() == 0
