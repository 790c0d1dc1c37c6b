"""Pure chunk arithmetic and hashing: a file's sha256 and the sha256 of each of its chunks."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# 1 MiB chunks: measured fastest for Python gRPC streaming here (see PERFORMANCE.md) while one
# chunk message stays far below gRPC's 4 MiB default limit.
DEFAULT_CHUNK_SIZE = 1 << 20
MIN_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 4 << 20  # a chunk message must fit in p2p_common.options.MAX_MESSAGE_BYTES
MAX_CHUNKS = 65536  # keeps a manifest (32 bytes a chunk) at 2 MiB, well inside one message
MAX_FILE_SIZE = MAX_CHUNK_SIZE * MAX_CHUNKS  # 256 GiB
DIGEST_BYTES = 32


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
    chunk_digests: tuple[bytes, ...]


def hash_file(path: Path, chunk_size: int | None = None, size: int | None = None) -> FileHashes:
    """Hash path once: the whole-file sha256 and each chunk's, on two cores.

    hashlib releases the GIL on large buffers, so the whole-file digest runs in a helper thread
    over the buffer the main thread has just hashed as a chunk; two buffers alternate.
    """
    size = path.stat().st_size if size is None else size  # a scan knows it already
    chunk_size = chunk_size or chunk_size_for(size)
    if size <= chunk_size:  # one chunk (most files of a large share): its digest is the file's
        with open(path, "rb", buffering=0) as f:
            data = f.read(chunk_size + 1)
        if len(data) != size:
            raise OSError(f"{path} changed size while being hashed")
        digest = hashlib.sha256(data)
        return FileHashes(size, digest.hexdigest(), chunk_size, (digest.digest(),) if size else ())
    whole = hashlib.sha256()
    digests: list[bytes] = []
    buffers = (bytearray(chunk_size), bytearray(chunk_size))
    total = 0
    with ThreadPoolExecutor(1, thread_name_prefix="hash") as pool, open(path, "rb", buffering=0) as f:
        pending: Future[None] | None = None
        turn = 0
        while True:
            buf = buffers[turn]
            n = f.readinto(buf)
            if not n:
                break
            view = memoryview(buf)[:n]
            digests.append(hashlib.sha256(view).digest())
            if pending is not None:
                pending.result()
            pending = pool.submit(whole.update, view)
            total += n
            turn ^= 1
        if pending is not None:
            pending.result()
    if total != size:
        raise OSError(f"{path} changed size while being hashed")
    return FileHashes(size, whole.hexdigest(), chunk_size, tuple(digests))


def sha256_of(path: Path) -> str:
    """The whole-file sha256 alone (what sha256sum prints)."""
    digest = hashlib.sha256()
    buf = bytearray(DEFAULT_CHUNK_SIZE)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(memoryview(buf)[:n])
    return digest.hexdigest()
