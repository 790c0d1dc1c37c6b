"""Chained chunk digests: OpenSSL resumed from a state agrees with SHA-256 as the standard defines it."""

from __future__ import annotations

import hashlib
import os

import pytest

from p2p_common.errors import FailedPrecondition
from peer import chunking
from peer.chunk_store import PartialFile
from peer.manifest import EMPTY_SHA256, Manifest
from peer.sha256_chain import Sha256Chain, chunk_digest
from tests.unit.sha256_reference import chaining_values

CHUNK = chunking.MIN_CHUNK_SIZE


def test_the_reference_is_sha256():
    for data in (b"", b"abc", bytes(range(256)) * 5):
        values = chaining_values(data, 64)
        assert (values[-1] if values else hashlib.sha256(b"").digest()) == hashlib.sha256(data).digest()


@pytest.mark.parametrize("size", [CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17])
def test_hash_file_gives_the_chaining_value_after_each_chunk(tmp_path, size):
    data = bytes((i * 31 + size) % 251 for i in range(size))
    (tmp_path / "f").write_bytes(data)
    hashes = chunking.hash_file(tmp_path / "f", chunk_size=CHUNK)
    assert list(hashes.chunk_digests) == chaining_values(data, CHUNK)
    assert hashes.chunk_digests[-1].hex() == hashes.sha256 == hashlib.sha256(data).hexdigest()


def test_each_chunk_verifies_on_its_own_from_the_previous_digest(tmp_path):
    data = bytes(range(256)) * (3 * CHUNK // 256) + b"tail"
    digests = chaining_values(data, CHUNK)
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    for i in reversed(range(len(chunks))):  # any order: each needs only its predecessor's digest
        previous = digests[i - 1] if i else None
        for buffer in (chunks[i], bytearray(chunks[i]), memoryview(data)[i * CHUNK : i * CHUNK + len(chunks[i])]):
            assert chunk_digest(previous, i * CHUNK, buffer, last=i == len(chunks) - 1) == digests[i]
    flipped = bytes([chunks[1][0] ^ 1]) + chunks[1][1:]
    assert chunk_digest(digests[0], CHUNK, flipped, last=False) != digests[1]
    last = len(chunks) - 1  # the file's length enters the final digest: a last chunk is checked at its offset
    assert chunk_digest(digests[last - 1], (last + 1) * CHUNK, chunks[last], last=True) != digests[last]


def test_a_state_exists_only_at_block_boundaries():
    chain = Sha256Chain()
    chain.update(b"x" * 65)
    with pytest.raises(ValueError, match="64-byte boundary"):
        chain.state()
    with pytest.raises(ValueError, match="multiple of 64"):
        Sha256Chain(b"\0" * 32, offset=100)


def test_a_manifest_whose_chain_does_not_end_in_its_sha256_is_refused(tmp_path):
    data = b"z" * (2 * CHUNK + 3)
    (tmp_path / "f").write_bytes(data)
    m = Manifest.from_hashes(chunking.hash_file(tmp_path / "f", chunk_size=CHUNK))
    assert m.problem() is None
    assert "last chunk digest" in (Manifest("0" * 64, m.size, m.chunk_size, m.chunk_digests).problem() or "")
    plain = tuple(hashlib.sha256(data[i : i + CHUNK]).digest() for i in range(0, len(data), CHUNK))
    assert "last chunk digest" in (Manifest(m.sha256, m.size, m.chunk_size, plain).problem() or "")
    assert Manifest(EMPTY_SHA256, 0, CHUNK, ()).problem() is None
    assert "empty file" in (Manifest("0" * 64, 0, CHUNK, ()).problem() or "")


def test_without_libcrypto_hashing_fails_in_one_line_and_the_rest_works(tmp_path, monkeypatch, capsys):
    from peer import cli, sha256_chain

    monkeypatch.setattr(sha256_chain, "_loaded", None)
    monkeypatch.setattr(sha256_chain, "_libcrypto_candidates", lambda: iter(()))
    with pytest.raises(FailedPrecondition, match="libcrypto"):
        Sha256Chain()
    assert chunk_digest(None, 0, b"one chunk", last=True) == hashlib.sha256(b"one chunk").digest()  # hashlib alone
    share = tmp_path / "share"
    share.mkdir()
    (share / "big.bin").write_bytes(b"x" * (2 * chunking.DEFAULT_CHUNK_SIZE))
    os.utime(share / "big.bin", (1, 1))  # settled
    assert cli.main(["ls", "--share", str(share)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("p2p-peer ls:") and "libcrypto" in err[0]
    assert cli.main(["--password", "pw", "serve", "--share", str(share), "--listen", "127.0.0.1:0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("p2p-peer serve:") and "libcrypto" in err[0]
    data = b"y" * (CHUNK + 1)
    m = Manifest(hashlib.sha256(data).hexdigest(), len(data), CHUNK, tuple(chaining_values(data, CHUNK)))
    with pytest.raises(FailedPrecondition, match="libcrypto"):  # refused before a download or upload starts
        PartialFile(tmp_path / "out", m)
    assert not (tmp_path / "out").exists()
