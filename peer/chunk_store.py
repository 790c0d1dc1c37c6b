"""A file being assembled from verified chunks: written aside, renamed into place when complete.

The partial data and the list of chunks already verified live next to the destination, so an
interrupted transfer resumes where it stopped, and the destination only ever appears complete.
The chunk list lives there too: a serving peer whose share holds the staging files (a `get`
into the share, in another process) serves the chunks verified so far (StagedFile).
Chunk digests chain into the file's sha256 (peer.sha256_chain), so a file whose every chunk
was verified has been checked whole too, with no second pass over its bytes.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import os
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from google.protobuf.message import DecodeError

from p2p.v1 import peer_pb2 as pb
from p2p_common.errors import DataLoss, FailedPrecondition, NotFound, ResourceExhausted
from p2p_common.names import HAVE_SUFFIX, MANIFEST_SUFFIX, PART_SUFFIX, STAGING_SUFFIXES
from peer import chunking, sha256_chain
from peer.availability import ChunkMap
from peer.direct_write import DirectWriter, write_all
from peer.manifest import Manifest

_RECORD = struct.Struct("<I")
COPY_MISSES = 64  # see PartialFile._copy_chunks


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
    return name.endswith(STAGING_SUFFIXES)


def _manifest_path(part_path: Path) -> Path:
    return part_path.with_name(part_path.name.removesuffix(PART_SUFFIX) + MANIFEST_SUFFIX)


def _write_manifest(path: Path, manifest: Manifest) -> None:
    """Once per staged file, whole or not at all (written aside, renamed)."""
    if path.exists():
        return
    reply = pb.GetManifestResponse(
        sha256=manifest.sha256, size=manifest.size, chunk_size=manifest.chunk_size, chunk_digests=manifest.chunk_digests
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(reply.SerializeToString())
    os.replace(tmp, path)


def _records(raw: bytes, chunk_count: int) -> set[int]:
    """The chunk indexes in whole records of raw (a record being appended may be cut short)."""
    whole = len(raw) - len(raw) % _RECORD.size
    return {i for o in range(0, whole, _RECORD.size) if (i := _RECORD.unpack_from(raw, o)[0]) < chunk_count}


def staged_records(dest: Path) -> list[Path]:
    """The chunk records of every content staged for dest (one listing of its folder)."""
    return [dest.with_name(n) for n in _staged_in(dest.parent).get(dest.name, [])]


def _staged_in(folder: Path) -> dict[str, list[str]]:
    """The chunk records in folder, by the name of the file they are staged for."""
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in entries if e.name.endswith(HAVE_SUFFIX)]
    except OSError:
        return {}
    by_dest: dict[str, list[str]] = {}
    for name in names:
        if (named := StagedFile.staged_as(Path(name))) is not None:
            by_dest.setdefault(named[0], []).append(name)
    return by_dest


class StagedListing:
    """staged_records for a batch of downloads, each folder listed once: a listing of a folder of
    2,000 files costs ~1 ms, and once for each file, 20,000 files fetched into one folder spent
    minutes listing it. (Staged files of an earlier version of a file are there before the batch
    starts; its own downloads stage each name once.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folders: dict[Path, dict[str, list[str]]] = {}

    def __call__(self, dest: Path) -> list[Path]:
        with self._lock:
            if (by_dest := self._folders.get(dest.parent)) is None:
                by_dest = self._folders[dest.parent] = _staged_in(dest.parent)
        return [dest.with_name(n) for n in by_dest.get(dest.name, [])]


def remove_if_abandoned(have_path: Path, untouched_seconds: float) -> bool:
    """Remove the staged files whose chunk record this is, when none has changed for
    untouched_seconds and no transfer is writing them (its writer holds a lock on the data file);
    True when removed. An upload whose sender never came back, or a `get` given up on, would
    otherwise keep its space (preallocated whole) in the share for ever."""
    stem = have_path.name.removesuffix(HAVE_SUFFIX)
    part_path = have_path.with_name(stem + PART_SUFFIX)
    manifest_path = _manifest_path(part_path)
    paths = [have_path, part_path, manifest_path, manifest_path.with_name(manifest_path.name + ".tmp")]
    mtimes = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            mtimes.append(path.stat().st_mtime)
    if not mtimes or time.time() - max(mtimes) < untouched_seconds:
        return False
    try:
        fd = os.open(part_path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        fd = -1  # no data: nobody writes it
    try:
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until removed: no writer starts meanwhile
        for path in paths:
            path.unlink(missing_ok=True)
    except BlockingIOError:  # a transfer is writing it (resumed after a long pause)
        return False
    finally:
        if fd >= 0:
            os.close(fd)
    return True


class BeingWritten(FailedPrecondition):
    """Another transfer (a `get` or an upload, in this process or another) holds the staged file."""


class PartialFile:
    """Verified chunks of one manifest, written at their offsets; thread-safe."""

    def __init__(self, dest: Path, manifest: Manifest, find_staged: Callable[[Path], list[Path]] = staged_records):
        """find_staged: the chunk records of what is staged for dest (earlier versions are reused)."""
        manifest.check()  # a chunk list that does not chain into its sha256 would verify nothing
        if manifest.chunk_count > 1:
            sha256_chain.check_available()  # before any byte moves, not in a writer thread
        self.dest = dest
        self.manifest = manifest
        self.part_path, self.have_path = staging_paths(dest, manifest.sha256)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:  # a file where the path needs a folder: name that one
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), exc.filename) from None
        self._lock = threading.Lock()
        # One pwrite at a time: the kernel serialises writes to one file anyway (the inode lock),
        # and a second writer spun on that lock, burning CPU the hashing could use (~3% measured)
        self._pwrite_lock = threading.Lock()
        self._have = bytearray(manifest.chunk_count)
        try:
            self._fd = os.open(self.part_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # named after the file the user asked for, not our hidden staging file
            raise OSError(exc.errno, exc.strerror, str(dest)) from None
        try:  # one writer per staged file, across processes too (two `get`s of one file, two uploads)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise BeingWritten(f"another transfer is already writing {dest}") from None
        self._preallocate()
        self._direct = DirectWriter(self.part_path)  # after _preallocate: direct writes into reserved blocks
        self._held_count = 0
        self._held_bytes = 0  # kept up to date: progress displays ask for it many times a second
        self._recover()
        # The record of verified chunks, for a resume and for serving them meanwhile; a file of one
        # chunk has neither (its chunk written is the whole file, renamed at once), and making and
        # removing the record was a fifth of the cost of fetching such a file
        self._have_file = open(self.have_path, "ab") if manifest.chunk_count > 1 else None  # noqa: SIM115 - lives as long as self
        if manifest.chunk_count > 1:  # for a serving peer to serve what is verified meanwhile
            _write_manifest(_manifest_path(self.part_path), manifest)
        self._earlier = [p for p in find_staged(dest) if p != self.have_path]
        self._adopt_earlier_versions()

    def _preallocate(self) -> None:
        """Reserve the whole file's blocks up front: writes into allocated blocks cost a tenth of
        the kernel time (measured here: 4,400 against 470-1,250 MiB/s), and a full disk shows
        now, before any byte is fetched."""
        if self.manifest.size == 0:
            return
        try:
            os.posix_fallocate(self._fd, 0, self.manifest.size)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                self._close_fd()
                if not self.have_path.exists():  # nothing of an earlier run to keep
                    self.part_path.unlink(missing_ok=True)
                raise ResourceExhausted(f"not enough disk space for {self.dest} ({self.manifest.size} bytes)") from None
            # filesystems without fallocate (EOPNOTSUPP, EINVAL): plain writes still work

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _recover(self) -> None:
        """Trust only recorded chunks whose bytes on disk still match their digest."""
        if not self.have_path.exists():
            return
        for index in sorted(_records(self.have_path.read_bytes(), self.manifest.chunk_count)):
            data = os.pread(self._fd, self.manifest.chunk_length(index), index * self.manifest.chunk_size)
            if self.manifest.chunk_ok(index, data):
                self._have[index] = 1
                self._held_count += 1
                self._held_bytes += len(data)
        # rewrite the record so that it lists exactly the chunks that survived
        with open(self.have_path, "wb") as f:
            f.write(b"".join(_RECORD.pack(i) for i, h in enumerate(self._have) if h))

    def _adopt_earlier_versions(self) -> None:
        """Copy in what earlier versions of this file hold at the same place: the file at dest
        that this one is to replace (`get --force` of a newer version), and what was staged for
        another content at dest (a get cut short, of a file that changed at its source since).

        Any chunk is checked on its own, from the previous chunk's digest in this manifest, so a
        chunk whose bytes are the same at the same offset is reused wherever it lies: a file that
        grew keeps every whole chunk, one edited in place all but the chunks edited. Each costs a
        hash, far less than fetching it."""
        m = self.manifest
        for have_path in self._earlier:
            earlier = StagedFile.find(have_path)
            if earlier is None or earlier.manifest.chunk_size != m.chunk_size:
                continue
            with contextlib.suppress(NotFound):
                held = [i for i in range(min(m.chunk_count, earlier.manifest.chunk_count)) if earlier.holds(i)]
                self._copy_chunks(earlier.open(), held)
        with contextlib.suppress(OSError):
            fd = os.open(self.dest, os.O_RDONLY | os.O_NOFOLLOW)
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                return
            self._copy_chunks(fd, range(min(m.chunk_count, chunking.chunk_count(st.st_size, m.chunk_size))))

    def _copy_chunks(self, fd: int, indexes: Iterable[int]) -> None:
        """Those of indexes that fd holds as this manifest has them, written here; closes fd.
        Given up after COPY_MISSES chunks in a row that differ: another file altogether (of many
        GiB, hashed whole before any byte was fetched, and for nothing)."""
        m, misses = self.manifest, 0
        try:
            for index in indexes:
                if not self._have[index]:
                    written = self.write_chunk(index, os.pread(fd, m.chunk_length(index), index * m.chunk_size))
                    misses = misses + 1 if written is Write.REJECTED else 0
                    if misses == COPY_MISSES:
                        break
        except OSError:  # a saving, not a need: what could not be copied is fetched
            pass
        finally:
            os.close(fd)

    def _remove_earlier_versions(self) -> None:
        """Once this content is in place, what was staged for another content at the same name
        could only ever be resumed to replace it: removed, unless a transfer is writing it."""
        for have_path in self._earlier:
            remove_if_abandoned(have_path, untouched_seconds=0)

    # -- state ---------------------------------------------------------------------------
    def has(self, index: int) -> bool:
        return bool(self._have[index])

    def missing(self) -> list[int]:
        return [i for i, h in enumerate(self._have) if not h]

    def held(self) -> list[int]:
        return [i for i, h in enumerate(self._have) if h]

    @property
    def complete(self) -> bool:
        return self._held_count == self.manifest.chunk_count

    @property
    def bytes_held(self) -> int:
        return self._held_bytes

    # -- writing -------------------------------------------------------------------------
    def write_chunk(self, index: int, data: bytes | memoryview) -> Write:
        """Verify chunk index and write it at its offset, unless it is wrong or held already.

        Safe to call from several threads at once: verifying and writing run outside the state
        lock (hashing and pwrite release the GIL), so one writer hashes while another writes.
        """
        if not 0 <= index < self.manifest.chunk_count or not self.manifest.chunk_ok(index, data):
            return Write.REJECTED
        if self._have[index]:
            return Write.ALREADY_HELD
        offset = index * self.manifest.chunk_size
        with self._pwrite_lock:
            if not self._direct.write(data, offset):
                write_all(self._fd, data, offset)
        with self._lock:
            if self._have[index]:
                return Write.ALREADY_HELD
            self._have[index] = 1
            self._held_count += 1
            self._held_bytes += len(data)
            if self._have_file is not None:
                self._have_file.write(_RECORD.pack(index))
                self._have_file.flush()
        return Write.WRITTEN

    def finish(self) -> Path:
        """Atomically rename the complete file to dest.

        Every chunk was verified from the previous chunk's digest, and the last one's digest is
        the file's sha256 (Manifest.check), so the file's sha256 is checked by then.
        """
        if not self.complete:
            raise DataLoss(f"{self.dest.name}: {len(self.missing())} chunks still missing")
        with self._lock:
            # No fsync: the rename makes the file appear whole or not at all to any process, and,
            # as with curl or BitTorrent clients, flushing to the platter is left to the kernel.
            os.ftruncate(self._fd, self.manifest.size)
            self._close()
            os.replace(self.part_path, self.dest)
            self.have_path.unlink(missing_ok=True)
            _manifest_path(self.part_path).unlink(missing_ok=True)
        self._remove_earlier_versions()
        return self.dest

    def _close(self) -> None:
        with self._pwrite_lock:  # not under a writer's feet (the buffer it copies into)
            self._direct.close()
        self._close_fd()
        if self._have_file is not None:
            self._have_file.close()

    def close(self) -> None:
        """Stop writing but keep the staged state for a later resume."""
        with self._lock:
            self._close()

    def discard(self) -> None:
        self._close()
        self.part_path.unlink(missing_ok=True)
        self.have_path.unlink(missing_ok=True)
        _manifest_path(self.part_path).unlink(missing_ok=True)


class StagedFile:
    """The read side of a PartialFile that another process is writing (a `get` into the share):
    its chunk list, and the chunks it has verified so far, re-read as it goes on.

    One for all the streams serving it: the record is read on from where it was last read, at
    most every REREAD_SECONDS, so callers asking for chunks it lacks cost no file reads each.
    """

    REREAD_SECONDS = 0.2

    def __init__(self, dest: Path, manifest: Manifest, inode: int):
        self.dest = dest
        self.manifest = manifest
        self.part_path, self.have_path = staging_paths(dest, manifest.sha256)
        self.inode = inode  # of the staged data file: the finished file keeps it (renamed into place)
        self._lock = threading.Lock()
        self._held: set[int] = set()
        self._offset = 0  # of the record, read up to here
        self._read_at = -self.REREAD_SECONDS
        self._map: ChunkMap | None = None  # of _held, built when asked for

    @staticmethod
    def staged_as(have_path: Path) -> tuple[str, str] | None:
        """(destination name, first 16 digits of its sha256) of a chunk record's file name."""
        stem = have_path.name.removesuffix(HAVE_SUFFIX)
        dest_name, _, sha16 = stem[1:].rpartition(".")
        if not stem.startswith(".") or not dest_name or len(sha16) != 16:
            return None
        return dest_name, sha16

    @classmethod
    def find(cls, have_path: Path) -> StagedFile | None:
        """The staged file whose chunk record this is; None when it is not one that can be served
        (its chunk list not written yet, by an earlier version, or for one chunk only)."""
        named = cls.staged_as(have_path)
        if named is None:
            return None
        dest_name, sha16 = named
        stem = have_path.name.removesuffix(HAVE_SUFFIX)
        try:
            reply = pb.GetManifestResponse.FromString(have_path.with_name(stem + MANIFEST_SUFFIX).read_bytes())
        except (OSError, DecodeError):
            return None
        manifest = Manifest(reply.sha256, reply.size, reply.chunk_size, tuple(reply.chunk_digests))
        if manifest.problem() or not manifest.sha256.startswith(sha16):
            return None
        part_path, _ = staging_paths(have_path.with_name(dest_name), manifest.sha256)
        try:
            inode = part_path.stat().st_ino
        except OSError:
            return None
        return cls(have_path.with_name(dest_name), manifest, inode)

    def holds(self, index: int) -> bool:
        """Whether chunk index is recorded as verified (its bytes are checked again: read_chunk)."""
        with self._lock:
            if index not in self._held and time.monotonic() - self._read_at >= self.REREAD_SECONDS:
                self._read_on()
            return index in self._held

    def chunk_map(self) -> ChunkMap:
        with self._lock:
            if self._map is None:
                self._map = ChunkMap.of(self._held, self.manifest.chunk_count)
            return self._map

    def forget(self, index: int) -> None:
        """Chunk index is recorded, but its bytes do not check out: not held after all."""
        with self._lock:
            if index in self._held:
                self._held.discard(index)
                self._map = None

    def _read_on(self) -> None:
        self._read_at = time.monotonic()
        try:
            with open(self.have_path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self._offset:  # rewritten by a writer that restarted: read it anew
                    self._held, self._offset = set(), 0
                f.seek(self._offset)
                raw = f.read(size - self._offset)
        except OSError:  # finished (renamed into place) or discarded meanwhile
            if self._finished():
                self._held = set(range(self.manifest.chunk_count))
                self._map = None
            return
        self._held |= _records(raw, self.manifest.chunk_count)
        self._offset += len(raw) - len(raw) % _RECORD.size
        self._map = None

    def _finished(self) -> bool:
        """Whether the download finished: its file renamed into place, whole. Its sources then
        keep fetching from this peer without a pause (the next rescan shares it as a whole file,
        and the tracker lists it as one seconds later)."""
        try:
            st = os.stat(self.dest, follow_symlinks=False)
        except OSError:
            return False
        return (st.st_ino, st.st_size) == (self.inode, self.manifest.size) and stat.S_ISREG(st.st_mode)

    def open(self) -> int:
        try:
            return os.open(self.part_path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            if self._finished():  # reads are checked chunk by chunk (read_chunk): a race costs nothing
                with contextlib.suppress(OSError):
                    return os.open(self.dest, os.O_RDONLY | os.O_NOFOLLOW)
            raise NotFound(f"{self.dest.name} is no longer being downloaded here: {exc.strerror}") from exc

    def read_chunk(self, fd: int, index: int) -> bytes | None:
        """Chunk index as verified, or None: the record is written after the chunk, and a writer
        restarting rewrites both, so a chunk is served only when its bytes check out."""
        data = os.pread(fd, self.manifest.chunk_length(index), index * self.manifest.chunk_size)
        return data if self.manifest.chunk_ok(index, data) else None
