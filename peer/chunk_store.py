"""A file being assembled from verified chunks: written aside, checked whole, renamed into place.

The partial data and the list of chunks already verified live next to the destination, so an
interrupted transfer resumes where it stopped, and the destination only ever appears complete.
"""

from __future__ import annotations

import enum
import hashlib
import os
import struct
import threading
from pathlib import Path

from p2p_common.errors import DataLoss
from peer.manifest import Manifest

PART_SUFFIX = ".p2p-part"
HAVE_SUFFIX = ".p2p-have"
_RECORD = struct.Struct("<I")


class Write(enum.Enum):
    """What write_chunk did."""

    WRITTEN = "written"
    ALREADY_HELD = "already held"  # another source delivered it first (endgame duplicates)
    REJECTED = "rejected"  # wrong length, digest or index: nothing written


def staging_paths(dest: Path, sha256: str) -> tuple[Path, Path]:
    """Hidden data and state files beside dest; keyed by content so a different file never mixes in."""
    stem = f".{dest.name}.{sha256[:16]}"
    return dest.with_name(stem + PART_SUFFIX), dest.with_name(stem + HAVE_SUFFIX)


def is_staging_file(name: str) -> bool:
    return name.endswith((PART_SUFFIX, HAVE_SUFFIX))


class PartialFile:
    """Verified chunks of one manifest, written at their offsets; thread-safe."""

    def __init__(self, dest: Path, manifest: Manifest):
        self.dest = dest
        self.manifest = manifest
        self.part_path, self.have_path = staging_paths(dest, manifest.sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._have = bytearray(manifest.chunk_count)
        self._fd = os.open(self.part_path, os.O_RDWR | os.O_CREAT, 0o644)
        self._whole = hashlib.sha256()
        self._hashed = 0  # chunks [0, _hashed) are in _whole
        self._recover()
        self._have_file = open(self.have_path, "ab")  # noqa: SIM115 - lives as long as self

    def _recover(self) -> None:
        """Trust only recorded chunks whose bytes on disk still match their digest."""
        if not self.have_path.exists():
            return
        raw = self.have_path.read_bytes()
        recorded = {_RECORD.unpack_from(raw, o)[0] for o in range(0, len(raw) - len(raw) % 4, 4)}
        for index in sorted(i for i in recorded if i < self.manifest.chunk_count):
            data = os.pread(self._fd, self.manifest.chunk_length(index), index * self.manifest.chunk_size)
            if self.manifest.chunk_ok(index, data):
                self._have[index] = 1
        # rewrite the record so that it lists exactly the chunks that survived
        with open(self.have_path, "wb") as f:
            f.write(b"".join(_RECORD.pack(i) for i, h in enumerate(self._have) if h))

    # -- state ---------------------------------------------------------------------------
    def has(self, index: int) -> bool:
        return bool(self._have[index])

    def missing(self) -> list[int]:
        return [i for i, h in enumerate(self._have) if not h]

    def held(self) -> list[int]:
        return [i for i, h in enumerate(self._have) if h]

    @property
    def complete(self) -> bool:
        return all(self._have)

    @property
    def bytes_held(self) -> int:
        return sum(self.manifest.chunk_length(i) for i, h in enumerate(self._have) if h)

    # -- writing -------------------------------------------------------------------------
    def write_chunk(self, index: int, data: bytes) -> Write:
        """Verify chunk index and write it at its offset, unless it is wrong or held already."""
        if not 0 <= index < self.manifest.chunk_count or not self.manifest.chunk_ok(index, data):
            return Write.REJECTED
        with self._lock:
            if self._have[index]:
                return Write.ALREADY_HELD
            os.pwrite(self._fd, data, index * self.manifest.chunk_size)
            self._have[index] = 1
            self._have_file.write(_RECORD.pack(index))
            self._have_file.flush()
            if index == self._hashed:  # the usual in-order case: hash from memory, no re-read
                self._whole.update(data)
                self._hashed += 1
        return Write.WRITTEN

    def _catch_up_whole_hash(self) -> None:
        m = self.manifest
        while self._hashed < m.chunk_count and self._have[self._hashed]:
            self._whole.update(os.pread(self._fd, m.chunk_length(self._hashed), self._hashed * m.chunk_size))
            self._hashed += 1

    def finish(self) -> Path:
        """Check the whole file's sha256, then atomically rename it to dest."""
        with self._lock:
            if not all(self._have):
                raise DataLoss(f"{self.dest.name}: {len(self.missing())} chunks still missing")
            self._catch_up_whole_hash()
            if self._whole.hexdigest() != self.manifest.sha256:
                self.discard()
                raise DataLoss(f"{self.dest.name}: every chunk matched its digest but the whole file's sha256 does not")
            os.ftruncate(self._fd, self.manifest.size)
            os.fsync(self._fd)
            self._close()
            os.replace(self.part_path, self.dest)
            self.have_path.unlink(missing_ok=True)
        return self.dest

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._have_file.close()

    def close(self) -> None:
        """Stop writing but keep the staged state for a later resume."""
        with self._lock:
            self._close()

    def discard(self) -> None:
        self._close()
        self.part_path.unlink(missing_ok=True)
        self.have_path.unlink(missing_ok=True)
