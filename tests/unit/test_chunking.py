"""Pure parts: chunk arithmetic, file hashing, manifests and name rules."""

from __future__ import annotations

import hashlib

import pytest

from p2p_common.names import is_sha256_hex, name_problem
from peer import chunking
from peer.manifest import Manifest

MiB = 1 << 20


@pytest.mark.parametrize(
    ("size", "chunk"),
    [(0, MiB), (MiB, MiB), (64 * 1024 * MiB, MiB), (64 * 1024 * MiB + 1, 2 * MiB), (256 * 1024 * MiB, 4 * MiB)],
)
def test_chunk_size_grows_only_for_huge_files(size, chunk):
    assert chunking.chunk_size_for(size) == chunk


def test_files_beyond_the_limit_are_refused():
    with pytest.raises(ValueError, match="larger than"):
        chunking.chunk_size_for(chunking.MAX_FILE_SIZE + 1)


@pytest.mark.parametrize("size", [0, 1, MiB - 1, MiB, MiB + 1, 3 * MiB + 17])
def test_hash_file_matches_hashlib(tmp_path, size):
    data = bytes((i * 7 + size) % 256 for i in range(size))
    path = tmp_path / "f"
    path.write_bytes(data)
    hashes = chunking.hash_file(path)
    assert hashes.sha256 == hashlib.sha256(data).hexdigest() and hashes.size == size
    assert len(hashes.chunk_digests) == chunking.chunk_count(size, MiB)
    assert not hashes.chunk_digests or hashes.chunk_digests[-1] == hashlib.sha256(data).digest()
    m = Manifest.from_hashes(hashes)
    assert m.problem() is None and all(m.chunk_ok(i, data[i * MiB : (i + 1) * MiB]) for i in range(m.chunk_count))
    joined = b"".join(hashes.chunk_digests)
    assert chunking.chunk_list_sha256(hashes.chunk_digests) == hashlib.sha256(joined).hexdigest()


@pytest.mark.parametrize("size", [10, 3 * MiB])
def test_hash_file_notices_a_size_other_than_the_scan_saw(tmp_path, size):
    path = tmp_path / "f"
    path.write_bytes(b"x" * size)
    with pytest.raises(OSError, match="changed size"):
        chunking.hash_file(path, size=size - 1)  # the file grew after the scan's stat


def test_manifest_checks_chunks_and_shape(tmp_path):
    data = b"a" * (MiB + 5)
    (tmp_path / "f").write_bytes(data)
    m = Manifest.from_hashes(chunking.hash_file(tmp_path / "f"))
    assert m.chunk_count == 2 and m.chunk_length(1) == 5 and m.problem() is None
    assert m.chunk_ok(1, b"a" * 5) and not m.chunk_ok(1, b"a" * 4) and not m.chunk_ok(1, b"b" * 5)
    assert "chunks" in (Manifest(m.sha256, m.size, m.chunk_size, m.chunk_digests[:1]).problem() or "")
    assert "power of two" in (Manifest(m.sha256, m.size, 1000, m.chunk_digests).problem() or "")
    assert "32 bytes" in (Manifest(m.sha256, m.size, m.chunk_size, (b"x", b"y")).problem() or "")


def test_a_one_chunk_manifest_keeps_no_digest_of_its_own_yet_checks_the_same(tmp_path):
    """Its one chained digest is its sha256: not kept twice (a share of a million small files
    held a million such tuples); what it checks and equals is unchanged."""
    (tmp_path / "f").write_bytes(b"small file")
    m = Manifest.from_hashes(chunking.hash_file(tmp_path / "f"))
    explicit = Manifest(m.sha256, m.size, m.chunk_size, (hashlib.sha256(b"small file").digest(),))
    assert m._digests is None and m == explicit and m.chunk_digests == explicit.chunk_digests
    assert m.chunk_digests == (bytes.fromhex(m.sha256),) and m.chunk_count == 1 and m.problem() is None
    assert m.chunk_ok(0, b"small file") and not m.chunk_ok(0, b"small filf")
    assert m.chunk_list_sha256 == chunking.chunk_list_sha256((hashlib.sha256(b"small file").digest(),))
    wrong = Manifest(m.sha256, m.size, m.chunk_size, (b"y" * 32,))  # a lying peer's digest is kept, and refused
    assert wrong.chunk_digests == (b"y" * 32,) and "sha256" in (wrong.problem() or "")
    assert Manifest(hashlib.sha256().hexdigest(), 0, m.chunk_size, ()).chunk_digests == ()


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a.txt", True),
        ("dir/sub/file.tar.gz", True),
        (".hidden", True),
        ("..data", True),
        ("", False),
        ("/abs", False),
        ("a/../b", False),
        ("..", False),
        ("./a", False),
        ("a//b", False),
        ("a/", False),
        ("a\x00b", False),
        ("a\nb", False),
        ("C:/windows", False),
        ("back\\slash", False),
        ("x" * 1025, False),
        ("x" * 1024, True),
        ("é" * 300, True),  # 600 bytes: over the quick check's 256 characters, within 1024 bytes
        ("é" * 513, False),  # 1026 bytes
        ("a/./b", False),
        ("a/.", False),
        ("a/.hidden/b", True),
        ("a..b/c..", True),
        ("tab\there", False),
        ("del\x7f", False),
        ("csi\x9b31m", False),  # a C1 control: an escape sequence to some terminals
        ("invoice\u202efdp.exe", False),  # displays as "invoiceexe.pdf"
        ("a\u2066b\u2069", False),
        ("\u05e9\u05dc\u05d5\u05dd/\u0633\u0644\u0627\u0645.txt", True),  # right-to-left scripts need no controls
        ("caf\u00e9 \u00a0na\u00efve", True),  # Latin-1 letters and a no-break space, just past C1
        (".p2p/hashes.db", False),  # a peer's own folder, and its transfers under way
        (".p2p", False),
        ("film.mkv.p2p-part", False),
        ("a/.film.mkv.0123456789abcdef.p2p-have", False),
        ("a/.p2p/x", True),  # only the top folder is the peer's
        (".p2pfiles/x", True),
        ("notes.p2p-part.txt", True),
    ],
)
def test_name_rules(name, ok):
    assert (name_problem(name) is None) == ok


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("/etc/passwd", "is an absolute path"),
        ("a\\..\\..\\x", "contains a backslash (a folder separator on Windows)"),
        ("c:boot.ini", "starts like a Windows drive (C:)"),
        ("a/../b", "has an empty, '.' or '..' component"),
    ],
)
def test_a_refused_name_is_told_why(name, problem):
    assert name_problem(name) == problem


def test_sha256_hex_is_lowercase_64_hex():
    assert is_sha256_hex("a" * 64) and not is_sha256_hex("A" * 64) and not is_sha256_hex("a" * 63)
