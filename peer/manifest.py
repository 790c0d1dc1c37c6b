"""A file's manifest: size, sha256, chunk size and chunk digests, and checks against them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from p2p_common.errors import InvalidArgument
from p2p_common.names import is_sha256_hex
from peer import chunking
from peer.sha256_chain import DIGEST_BYTES, chunk_digest

EMPTY_SHA256 = hashlib.sha256().hexdigest()


@dataclass(frozen=True, slots=True)  # one per shared file: a share may hold a million
class Manifest:
    """Everything needed to verify each chunk of one content before it is written.

    chunk_digests are chained (peer.sha256_chain): chunk i is checked from digest i-1, and the
    last digest is the file's sha256, so a file whose every chunk passed has that sha256.
    """

    sha256: str
    size: int
    chunk_size: int
    # None for one chunk whose digest is the file's sha256 (see chunk_digests): most files of a
    # large share are that small, and its tuple and bytes took ~110 of ~740 bytes a file
    _digests: tuple[bytes, ...] | None

    def __post_init__(self) -> None:
        if self._digests is not None and len(self._digests) == 1 and self._digests[0].hex() == self.sha256:
            object.__setattr__(self, "_digests", None)

    @property
    def chunk_digests(self) -> tuple[bytes, ...]:
        return (bytes.fromhex(self.sha256),) if self._digests is None else self._digests

    @classmethod
    def from_hashes(cls, hashes: chunking.FileHashes) -> Manifest:
        return cls(hashes.sha256, hashes.size, hashes.chunk_size, hashes.chunk_digests)

    @classmethod
    def implied(cls, sha256: str, size: int, chunk_size: int) -> Manifest | None:
        """The manifest of a file of at most one chunk, which its sha256 alone gives (its one
        chained digest is the file's sha256); None for a larger file, or a malformed sha256."""
        if size > chunk_size or not is_sha256_hex(sha256):
            return None
        return cls(sha256, size, chunk_size, (bytes.fromhex(sha256),) if size else ())

    @property
    def chunk_count(self) -> int:
        return 1 if self._digests is None else len(self._digests)

    @property
    def chunk_list_sha256(self) -> str:
        return chunking.chunk_list_sha256(self.chunk_digests)

    def chunk_length(self, index: int) -> int:
        return chunking.chunk_length(self.size, self.chunk_size, index)

    def chunk_ok(self, index: int, data: bytes | memoryview) -> bool:
        """True when data is exactly chunk index (whatever the other chunks hold)."""
        if len(data) != self.chunk_length(index):
            return False
        previous = self.chunk_digests[index - 1] if index else None
        last = index == len(self.chunk_digests) - 1
        return chunk_digest(previous, index * self.chunk_size, data, last) == self.chunk_digests[index]

    def problem(self) -> str | None:
        """Why this manifest cannot be right, or None: shape checks any peer's manifest must pass."""
        if not is_sha256_hex(self.sha256):
            return "sha256 must be 64 lowercase hex digits"
        if self.size < 0 or self.size > chunking.MAX_FILE_SIZE:
            return f"size must be 0-{chunking.MAX_FILE_SIZE} bytes"
        c = self.chunk_size
        if not (chunking.MIN_CHUNK_SIZE <= c <= chunking.MAX_CHUNK_SIZE and c & (c - 1) == 0):
            return "chunk_size must be a power of two from 64 KiB to 4 MiB"
        if len(self.chunk_digests) != chunking.chunk_count(self.size, c):
            return f"a file of {self.size} bytes in {c}-byte chunks has {chunking.chunk_count(self.size, c)} chunks"
        if any(len(d) != DIGEST_BYTES for d in self.chunk_digests):
            return "every chunk digest must be 32 bytes"
        if self.chunk_digests and self.chunk_digests[-1].hex() != self.sha256:
            return "the last chunk digest must be the file's sha256 (chained chunk digests)"
        if not self.chunk_digests and self.sha256 != EMPTY_SHA256:
            return f"an empty file's sha256 is {EMPTY_SHA256}"
        return None

    def check(self) -> None:
        problem = self.problem()
        if problem:
            raise InvalidArgument(f"manifest of {self.sha256[:16]}: {problem}")
