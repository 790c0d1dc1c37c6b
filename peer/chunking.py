"""Pure chunk arithmetic and hashing: a file's sha256 and the chained digest of each of its chunks."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from peer.sha256_chain import Sha256Chain

# 1 MiB chunks: measured fastest for Python gRPC streaming here (see PERFORMANCE.md) while one
# chunk message stays far below gRPC's 4 MiB default limit.
DEFAULT_CHUNK_SIZE = 1 << 20
MIN_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 4 << 20  # a chunk message must fit in p2p_common.options.MAX_MESSAGE_BYTES
MAX_CHUNKS = 65536  # keeps a manifest (32 bytes a chunk) at 2 MiB, well inside one message
MAX_FILE_SIZE = MAX_CHUNK_SIZE * MAX_CHUNKS  # 256 GiB


def chunk_size_for(size: int) -> int:
    """The chunk size for a file of size bytes: 1 MiB, doubled until the chunks fit MAX_CHUNKS."""
    chunk = DEFAULT_CHUNK_SIZE
    while chunk < MAX_CHUNK_SIZE and chunk * MAX_CHUNKS < size:
        chunk *= 2
    if chunk * MAX_CHUNKS < size:
        raise ValueError(f"file of {size} bytes is larger than the {MAX_FILE_SIZE} bytes supported")
    return chunk


def chunk_count(size: int, chunk_size: int) -> int:
    return (size + chunk_size - 1) // chunk_size


def chunk_length(size: int, chunk_size: int, index: int) -> int:
    """Length of chunk index: chunk_size, except a shorter last chunk."""
    return min(chunk_size, size - index * chunk_size)


def chunk_list_sha256(digests: Sequence[bytes]) -> str:
    """The value a tracker publishes to vouch for a chunk list: sha256 over the digests in order."""
    return hashlib.sha256(b"".join(digests)).hexdigest()


@dataclass(frozen=True)
class FileHashes:
    """What hashing a file yields."""

    size: int
    sha256: str
    chunk_size: int
    chunk_digests: tuple[bytes, ...]  # chained: see peer.sha256_chain; the last is the sha256


def hash_file(path: Path, chunk_size: int | None = None, size: int | None = None) -> FileHashes:
    """Hash path in one pass: the digest after each chunk, the last of which is the file's sha256.

    A helper thread reads the next chunk while this one is hashed (both release the GIL).

    Raises OSError when the file turns out to have another size than expected (being written).
    """
    size = path.stat().st_size if size is None else size  # a scan knows it already
    chunk_size = chunk_size or chunk_size_for(size)
    count = chunk_count(size, chunk_size)
    if count <= 1:  # most files of a large share: read and hashed at once
        with open(path, "rb", buffering=0) as f:
            data = f.read(chunk_size + 1)
        if len(data) != size:
            raise OSError(f"{path} changed size while being hashed")
        digest = hashlib.sha256(data)
        return FileHashes(size, digest.hexdigest(), chunk_size, (digest.digest(),) if size else ())
    chain = Sha256Chain()
    digests: list[bytes] = []
    buffers = (memoryview(bytearray(chunk_size)), memoryview(bytearray(chunk_size)))
    with ThreadPoolExecutor(1, thread_name_prefix="read") as reader, open(path, "rb", buffering=0) as f:

        def read(index: int) -> memoryview:
            view = buffers[index % 2][: chunk_length(size, chunk_size, index)]
            if f.readinto(view) != len(view):
                raise OSError(f"{path} changed size while being hashed")
            return view

        pending = reader.submit(read, 0)
        for index in range(count):
            view = pending.result()
            if index + 1 < count:  # the next chunk is read into the other buffer meanwhile
                pending = reader.submit(read, index + 1)
            chain.update(view)
            digests.append(chain.digest() if index == count - 1 else chain.state())
        if f.read(1):
            raise OSError(f"{path} changed size while being hashed")
    return FileHashes(size, digests[-1].hex(), chunk_size, tuple(digests))


def sha256_of(path: Path) -> str:
    """The whole-file sha256 alone (what sha256sum prints)."""
    digest = hashlib.sha256()
    buf = bytearray(DEFAULT_CHUNK_SIZE)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(memoryview(buf)[:n])
    return digest.hexdigest()
