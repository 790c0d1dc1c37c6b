"""The shared directory: scanning, a persistent hash cache, change detection, safe lookups."""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from p2p_common import process_lock
from p2p_common.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from p2p_common.names import HAVE_SUFFIX, STATE_DIR_NAME, name_problem
from peer import chunking
from peer.chunk_store import StagedFile, is_staging_file, remove_if_abandoned
from peer.manifest import Manifest
from peer.share_filter import ShareFilter

log = logging.getLogger(__name__)

SETTLE_SECONDS = 1.0  # a file modified more recently than this may still be being written


class _Look(enum.Enum):
    """What a scan did with a file it came upon."""

    UNCHANGED = 1
    SKIPPED = 2  # a name no peer could use
    UNSETTLED = 3  # still being written
    INDEXED = 4


@dataclass(frozen=True, slots=True)  # no __dict__, no path (the share's root and name give it): ~0.5 KiB a file
class SharedFile:
    """One file of the share, as indexed: its name in the share, what it was when hashed, its manifest."""

    name: str
    mtime_ns: int
    inode: int
    manifest: Manifest
    staged: StagedFile | None = None  # still being downloaded here: only some chunks are held

    @property
    def partial(self) -> bool:
        return self.staged is not None


@dataclass
class ShareChanges:
    """What a rescan found: files new or changed, and names gone."""

    added: list[SharedFile] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


def _state_dir_for(root: Path) -> Path:
    """Where a share's hash cache and lock go: in it (.p2p), or for a share this user cannot write
    (a read-only disk, a dataset of another user), in this user's state folder, one per share."""
    inside = root / STATE_DIR_NAME
    try:
        inside.mkdir(exist_ok=True)
        if os.access(inside, os.W_OK):
            return inside
        why = "not writable"
    except FileExistsError:
        return inside  # a file of that name: HashCache says what to do
    except OSError as exc:
        why = exc.strerror or str(exc)
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    outside = base / "p2p-peer" / "shares" / hashlib.sha256(os.fsencode(root)).hexdigest()[:16]
    log.info("cannot write in %s (%s): its hash cache is kept in %s", root, why, outside)
    return outside


class HashCache:
    """sha256 and chunk digests per (name, size, mtime, inode), kept in SQLite across restarts.

    put() only queues a row; flush() writes the queue in one transaction (a commit per file
    made hashing 100,000 small files take minutes).
    """

    FLUSH_EVERY = 1000
    FORMAT = 2  # 2: chained chunk digests (peer.sha256_chain); 1 had a plain sha256 per chunk

    def __init__(self, path: Path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._open(path)
        except FileExistsError:
            raise FailedPrecondition(f"{path.parent} is a file, where this peer keeps its hash cache: move it away") from None
        except (OSError, sqlite3.OperationalError) as exc:  # cannot be written (a full disk): serving goes on
            why = exc.strerror if isinstance(exc, OSError) else exc
            log.warning("cannot keep the hash cache in %s (%s): kept in memory, the next start hashes again", path, why)
            self._db = self._open(":memory:")
        except sqlite3.DatabaseError as exc:  # not a database (any more): a cache, so start a new one
            aside = path.with_name(path.name + ".unreadable")
            os.replace(path, aside)
            for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                leftover.unlink(missing_ok=True)
            log.warning("the hash cache %s could not be read (%s): moved to %s, the share is hashed again", path, exc, aside)
            self._db = self._open(path)
        self._lock = threading.Lock()
        self._queued: list[tuple[object, ...]] = []
        self._write_failed = False  # warned once; hashes made since are lost at exit
        self._closed = False  # by close(), under the lock: a hashing thread still running finds nothing, keeps nothing

    @classmethod
    def _open(cls, path: Path | str) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # a lost entry costs one re-hash, never a wrong digest
            if db.execute("PRAGMA user_version").fetchone()[0] != cls.FORMAT:
                db.execute("DROP TABLE IF EXISTS hashes")  # digests of another scheme: hash again
                db.execute(f"PRAGMA user_version = {cls.FORMAT}")
            db.execute(
                "CREATE TABLE IF NOT EXISTS hashes (name TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER,"
                " sha256 TEXT, chunk_size INTEGER, digests BLOB)"
            )
        except BaseException:
            db.close()
            raise
        return db

    def get(self, name: str, st: os.stat_result) -> Manifest | None:
        with self._lock:
            if self._closed:
                return None
            row = self._db.execute(
                "SELECT sha256, chunk_size, digests FROM hashes WHERE name=? AND size=? AND mtime_ns=? AND inode=?",
                (name, st.st_size, st.st_mtime_ns, st.st_ino),
            ).fetchone()
        if row is None:
            return None
        blob = bytes(row[2])
        digests = tuple(blob[i : i + 32] for i in range(0, len(blob), 32))
        return Manifest(row[0], st.st_size, row[1], digests)

    def put(self, name: str, st: os.stat_result, manifest: Manifest) -> None:
        digests = b"".join(manifest.chunk_digests)
        row = (name, st.st_size, st.st_mtime_ns, st.st_ino, manifest.sha256, manifest.chunk_size, digests)
        with self._lock:
            self._queued.append(row)
            full = len(self._queued) >= self.FLUSH_EVERY
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            rows, self._queued = self._queued, []
            if rows:
                self._write("INSERT OR REPLACE INTO hashes VALUES (?,?,?,?,?,?,?)", rows)

    def forget(self, names: list[str]) -> None:
        self.flush()
        with self._lock:
            self._write("DELETE FROM hashes WHERE name=?", [(n,) for n in names])

    def _write(self, statement: str, rows: list[tuple[object, ...]]) -> None:
        """In one transaction, under the lock. A cache that cannot be written (its disk filled up)
        costs hashing again at the next start, never the serving: a warning, once."""
        if self._closed:
            return
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(statement, rows)
        except sqlite3.Error as exc:
            if not self._write_failed:
                self._write_failed = True
                log.warning("cannot write the hash cache (%s): files hashed from now on are hashed again at the next start", exc)

    def forget_except(self, names: set[str]) -> None:
        self.flush()
        with self._lock:
            known = set() if self._closed else {r[0] for r in self._db.execute("SELECT name FROM hashes")}
        self.forget(sorted(known - names))

    def close(self) -> None:
        """Write what is queued and close, under the lock: a peer stopping while its watcher still
        hashed a large file closed the database under that thread's query."""
        self.flush()
        with self._lock:
            self._closed = True
            self._db.close()


class Share:
    """The files under root, hashed once, looked up by name or content; thread-safe."""

    def __init__(
        self,
        root: Path,
        state_dir: Path | None = None,
        keep_partial_seconds: float = 0,
        share_filter: ShareFilter | None = None,  # what is left out: hidden files by default
    ):
        self.root = root.resolve()
        self.filter = share_filter or ShareFilter()
        self.left_out = 0  # files and folders the last walk left out by the filter
        # an unfinished download or upload untouched this long is removed by a scan; 0: kept for ever
        self.keep_partial_seconds = keep_partial_seconds
        if self.root.exists() and not self.root.is_dir():
            raise InvalidArgument(f"the share {self.root} is a file; share the folder holding it")
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_dir = state_dir or _state_dir_for(self.root)
        self._state_dirs = (str(self.state_dir), str(self.root / STATE_DIR_NAME))  # the latter left by an earlier serve
        self._serving_lock = -1  # see claim_for_serving
        self.cache = HashCache(self.state_dir / "hashes.db")
        self._lock = threading.Lock()
        self._by_name: dict[str, SharedFile] = {}
        # content -> the file that holds it, or a dict by name when several do (most contents are
        # held once, and a dict for each of a million files would cost 180 MiB)
        self._by_sha: dict[str, SharedFile | dict[str, SharedFile]] = {}
        self._added_outside_scan: list[SharedFile] = []  # uploads, until take_added or the next scan reports them
        self._landed_during_walk: set[str] = set()  # names add_verified indexed since the last walk began
        self._cache_reconciled = False  # the first scan drops cache entries of files gone meanwhile
        self.complete = False  # the last scan went through the whole share (it was not stopped)
        self.walk_seconds = 0.0  # the last whole scan's time, less hashing: what a rescan costs
        self._unreadable: set[str] = set()  # folders already warned about: one warning, not one a rescan
        self._unshareable: set[str] = set()  # names already warned about, the same way
        self.on_folder: Callable[[str, str], None] | None = None  # told of each folder walked (path, prefix): see FolderEvents

    # -- scanning ------------------------------------------------------------------------
    def _walk(self, staged: list[tuple[str, str]], under: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
        """(name, path, stat) of the regular files under root (or its folder named under + "/");
        symlinks, staging files, the state dir and what the filter leaves out are skipped (the
        chunk records of staged files are listed in staged, as their folder's prefix and path).
        Each folder is handed to on_folder before it is listed. Plain strings, not Paths: a
        rescan of 100,000 unchanged files is mostly this loop."""
        state_dirs = self._state_dirs
        why_left_out = self.filter.why_left_out
        on_folder = self.on_folder
        left_out = 0
        stack = [(os.path.join(self.root, under), f"{under}/")] if under else [(str(self.root), "")]
        while stack:
            folder, prefix = stack.pop()
            if on_folder is not None:  # before listing it: a file created meanwhile is reported
                on_folder(folder, prefix)
            try:
                with os.scandir(folder) as listing:
                    entries = list(listing)
            except OSError as exc:
                if folder not in self._unreadable:
                    self._unreadable.add(folder)
                    log.warning("cannot read %s (its files are not shared): %s", folder, exc.strerror or exc)
                continue
            self._unreadable.discard(folder)
            for entry in entries:
                if entry.is_symlink() or is_staging_file(entry.name) or entry.path in state_dirs:
                    if entry.name.endswith(HAVE_SUFFIX) and not entry.is_symlink():
                        staged.append((prefix, entry.path))
                    continue
                if why_left_out(prefix + entry.name):
                    left_out += 1
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, f"{prefix}{entry.name}/"))
                elif entry.is_file(follow_symlinks=False):
                    yield prefix + entry.name, entry.path, entry.stat(follow_symlinks=False)
        if not under:
            self.left_out = left_out

    def scan(self, slice_seconds: float = 0.0, on_slice: Callable[[ShareChanges], bool] | None = None) -> ShareChanges:
        """Re-read the directory; hash what is new or changed; return the differences.

        With on_slice, what was hashed is indexed and handed to it every slice_seconds, as the
        walk goes on: a share of a million files is served and published as it is hashed, in one
        walk (a walk a slice made indexing it quadratic: hours). on_slice returning False stops
        the scan there, with `complete` False and nothing withdrawn. Returned: what was not handed
        over, and the names gone.
        """
        changes = ShareChanges()
        seen: set[str] = set()
        now_ns = time.time_ns()
        started = time.monotonic()
        next_slice = started + slice_seconds
        hashing = 0.0  # seconds spent hashing, which is not the walk's own cost
        staged: list[tuple[str, str]] = []
        with self._lock:
            self._landed_during_walk.clear()
        for name, path, st in self._walk(staged):
            began = time.monotonic()
            if self._look_at(name, path, st, now_ns, seen, changes) is not _Look.INDEXED:
                continue
            hashing += time.monotonic() - began
            due = self._hand_over_when_due(changes, next_slice, slice_seconds, on_slice)
            if due is None:
                self.complete = False
                return ShareChanges()
            next_slice = due
        for prefix, have_path in staged:
            if self.keep_partial_seconds and remove_if_abandoned(Path(have_path), self.keep_partial_seconds):
                named = StagedFile.staged_as(Path(have_path))
                what = prefix + named[0] if named else have_path
                log.info("removed the unfinished transfer of %s: untouched for over %g s", what, self.keep_partial_seconds)
                continue
            self._index_staged(prefix, Path(have_path), seen, changes)
        with self._lock:  # an upload indexed after the walk passed its folder is not gone
            gone = [n for n in self._by_name if n not in seen and n not in self._landed_during_walk]
            for name in gone:
                self._drop(name)
            for shared in changes.added:
                self._add(shared)
            changes.added.extend(f for f in self._added_outside_scan if self._by_name.get(f.name) is f)
            self._added_outside_scan.clear()
        changes.removed = gone
        if not self._cache_reconciled:  # only a whole scan knows which entries are stale
            self.cache.forget_except(seen | {f.name for f in changes.added})
            self._cache_reconciled = True
        elif gone:
            self.cache.forget(gone)
        self.cache.flush()
        self.complete = True
        self.walk_seconds = time.monotonic() - started - hashing
        return changes

    def _look_at(self, name: str, path: str, st: os.stat_result, now_ns: int, seen: set[str], changes: ShareChanges) -> _Look:
        """One regular file a scan came upon: seen if known unchanged, else indexed into changes."""
        known = self._by_name.get(name)
        if known and known.mtime_ns == st.st_mtime_ns and known.inode == st.st_ino and known.manifest.size == st.st_size:
            seen.add(name)
            return _Look.UNCHANGED
        if not known and (problem := name_problem(name)) is not None:
            if name not in self._unshareable:  # a name no peer could use safely (a control character,
                self._unshareable.add(name)  # a backslash, bytes of another encoding): never shared
                log.warning("not sharing %r: its name %s", name, problem)
            return _Look.SKIPPED
        finished = _finished_download(known, st)  # verified chunk by chunk as it was written
        if now_ns - st.st_mtime_ns < SETTLE_SECONDS * 1e9 and finished is None:
            return _Look.UNSETTLED  # still being written: withdraw it, pick it up on a later scan
        seen.add(name)
        shared = self._index_file(name, Path(path), st, finished)
        if shared is not None:
            changes.added.append(shared)
        return _Look.INDEXED

    def rescan(
        self, names: set[str], slice_seconds: float = 0.0, on_slice: Callable[[ShareChanges], bool] | None = None
    ) -> tuple[ShareChanges, set[str]]:
        """Look again at these names only (from FolderEvents), not the whole share: a name is a
        file, or with a trailing "/" a folder (walked; what was under it and is not now is gone).
        Hands over in slices as scan does (a terabyte moved in is published as it is hashed).
        Returns the changes not handed over, and the names of files still being written, to
        look at again once they settle."""
        changes, seen, unsettled = ShareChanges(), set[str](), set[str]()
        looked: list[str] = []  # files, and folders ending in "/", whose known files not seen are gone
        now_ns = time.time_ns()
        next_slice = time.monotonic() + slice_seconds
        staged: list[tuple[str, str]] = []
        with self._lock:
            self._landed_during_walk.clear()
        for name in sorted(names):
            bare = name.rstrip("/")
            path = os.path.join(self.root, bare)
            if any(part in ("", ".", "..") for part in bare.split("/")):
                continue
            if os.path.realpath(os.path.dirname(path)) != os.path.dirname(path):
                looked.append(name)
                continue  # a folder on its way became a symlink: what it leads to is not the share's
            folder = bare.rpartition("/")[0]
            if name.endswith(HAVE_SUFFIX) and not (folder and self._left_out_of_walks(folder)):
                self._look_at_record(folder, path, staged, looked)  # a download into the share, under way
                continue
            if self._left_out_of_walks(bare):
                continue
            looked.append(name)
            try:
                st = os.lstat(path)
            except OSError:  # gone (or its folder is)
                continue
            if name.endswith("/") and stat.S_ISDIR(st.st_mode):
                files = list(self._walk(staged, under=bare))
            elif not name.endswith("/") and stat.S_ISREG(st.st_mode):
                files = [(name, path, st)]
            else:
                continue
            for inner, inner_path, inner_st in files:
                look = self._look_at(inner, inner_path, inner_st, now_ns, seen, changes)
                if look is _Look.UNSETTLED:
                    unsettled.add(inner)
                    continue
                due = self._hand_over_when_due(changes, next_slice, slice_seconds, on_slice)
                if due is None:
                    return ShareChanges(), set()
                next_slice = due
        for prefix, have_path in staged:
            self._index_staged(prefix, Path(have_path), seen, changes)
        folders = tuple(p for p in looked if p.endswith("/"))
        with self._lock:
            gone = [n for n in looked if n in self._by_name]
            if folders:  # a walk through every name: only for a folder's events
                gone += [n for n in self._by_name if n.startswith(folders)]
            gone = [n for n in dict.fromkeys(gone) if n not in seen and n not in self._landed_during_walk]
            for name in gone:
                self._drop(name)
            for shared in changes.added:
                self._add(shared)
        changes.removed = gone
        if gone:
            self.cache.forget(gone)
        self.cache.flush()
        return changes, unsettled

    def _look_at_record(self, folder: str, path: str, staged: list[tuple[str, str]], looked: list[str]) -> None:
        """A download's chunk record (at path, in folder) changed: share what it holds so far (see
        _index_staged), or, once it is gone with its staged file (given up), withdraw that partial copy."""
        prefix = f"{folder}/" if folder else ""
        if os.path.isfile(path) and not os.path.islink(path):
            staged.append((prefix, path))
            return
        named = StagedFile.staged_as(Path(path))
        known = self._by_name.get(prefix + named[0]) if named else None
        if known is not None and known.staged is not None and not known.staged.part_path.exists():
            looked.append(known.name)

    def _left_out_of_walks(self, name: str) -> bool:
        """Whether a walk would pass name by: a staging file, the state folder, or left out by the filter."""
        path = os.path.join(self.root, name)
        return (
            is_staging_file(os.path.basename(name))
            or any(path == d or path.startswith(d + os.sep) for d in self._state_dirs)
            or bool(self.filter.why_path_left_out(name))
        )

    def _hand_over_when_due(
        self, changes: ShareChanges, due: float, slice_seconds: float, on_slice: Callable[[ShareChanges], bool] | None
    ) -> float | None:
        """Hand what changes hold to on_slice once the slice is due; the next slice's time, or
        None when on_slice asks to stop."""
        if on_slice is None or not changes.added or time.monotonic() < due:
            return due
        if not on_slice(self._hand_over(changes)):
            return None
        return time.monotonic() + slice_seconds

    def _hand_over(self, changes: ShareChanges) -> ShareChanges:
        """Index what a scan under way found so far (served from now on), and take it out of changes."""
        self.cache.flush()
        with self._lock:
            for shared in changes.added:
                self._add(shared)
        handed, changes.added = ShareChanges(changes.added), []
        return handed

    def _index_file(self, name: str, path: Path, st: os.stat_result, verified: Manifest | None = None) -> SharedFile | None:
        """Hashed, unless the cache knows it or it is a download that just finished (verified)."""
        manifest = self.cache.get(name, st)
        if manifest is None and verified is not None:
            manifest = verified
            self.cache.put(name, st, manifest)
        if manifest is None:
            try:
                hashes = chunking.hash_file(path, size=st.st_size)
                after = path.stat()
            except (OSError, ValueError) as exc:
                log.warning("not sharing %s: %s", name, exc)
                return None
            if (after.st_mtime_ns, after.st_size) != (st.st_mtime_ns, st.st_size):
                return None  # modified while hashed: next scan
            manifest = Manifest.from_hashes(hashes)
            self.cache.put(name, st, manifest)
        return SharedFile(name, st.st_mtime_ns, st.st_ino, manifest)

    def _index_staged(self, prefix: str, have_path: Path, seen: set[str], changes: ShareChanges) -> None:
        """A file being downloaded into the share is shared partially (its verified chunks), under
        the name it will have; a whole file of that name comes first."""
        named = StagedFile.staged_as(have_path)
        if named is None or prefix + named[0] in seen:
            return
        name = prefix + named[0]
        known = self._by_name.get(name)
        if known is not None and known.staged is not None and known.manifest.sha256.startswith(named[1]):
            if known.staged.part_path.exists():  # shared partially already (its chunk list is not read again)
                seen.add(name)
            return
        found = StagedFile.find(have_path)
        if found is None or name_problem(name) is not None or self.filter.why_left_out(name):
            return
        seen.add(name)
        changes.added.append(SharedFile(name, 0, found.inode, found.manifest, staged=found))

    def _add(self, shared: SharedFile) -> None:
        self._drop(shared.name)
        self._by_name[shared.name] = shared
        key = shared.manifest.sha256
        held = self._by_sha.get(key)
        if held is None:
            self._by_sha[key] = shared
        elif isinstance(held, SharedFile):
            self._by_sha[key] = {held.name: held, shared.name: shared}
        else:
            held[shared.name] = shared

    def _drop(self, name: str) -> None:
        old = self._by_name.pop(name, None)
        if old is None:
            return
        key = old.manifest.sha256
        held = self._by_sha[key]
        if isinstance(held, SharedFile):
            del self._by_sha[key]
            return
        del held[name]
        if len(held) == 1:
            [self._by_sha[key]] = held.values()

    def add_verified(self, name: str, path: Path, manifest: Manifest) -> SharedFile:
        """Index a file this peer just wrote and verified (an upload), without hashing it again."""
        st = path.stat()
        self.cache.put(name, st, manifest)
        self.cache.flush()
        shared = SharedFile(name, st.st_mtime_ns, st.st_ino, manifest)
        with self._lock:
            self._add(shared)
            self._added_outside_scan.append(shared)
            self._landed_during_walk.add(name)
        return shared

    def take_added(self) -> ShareChanges:
        """The files add_verified indexed and no scan has reported yet: an upload is published
        without a walk of the share (one an upload made receiving n files cost n walks)."""
        with self._lock:
            added = [f for f in self._added_outside_scan if self._by_name.get(f.name) is f]
            self._added_outside_scan.clear()
        return ShareChanges(added, [])

    # -- lookups -------------------------------------------------------------------------
    def files(self) -> list[SharedFile]:
        """The whole files of the share."""
        with self._lock:
            return sorted((f for f in self._by_name.values() if f.staged is None), key=lambda f: f.name)

    def published(self) -> list[SharedFile]:
        """Everything published: the whole files and those still being downloaded here."""
        with self._lock:
            return sorted(self._by_name.values(), key=lambda f: f.name)

    def by_name(self, name: str) -> SharedFile | None:
        with self._lock:
            return self._by_name.get(name)

    def by_sha256(self, sha256: str) -> SharedFile:
        with self._lock:
            held = self._by_sha.get(sha256)
            holders = held.values() if isinstance(held, dict) else (held,) if held else ()
            shared = min(holders, key=lambda f: f.staged is not None, default=None)  # a whole one first
        if shared is None:
            raise NotFound(f"this peer does not share content {sha256}")
        return shared

    def path_for(self, name: str) -> Path:
        """Where a new file called name goes; refuses anything that would land outside root, or
        where a file stands for one of its folders, or a folder for the file itself."""
        problem = name_problem(name)
        if problem:
            raise InvalidArgument(f"name {name!r} {problem}")
        if why := self.filter.why_path_left_out(name):  # it would land in the share and not be shared
            raise PermissionDenied(f"this peer leaves {name!r} out of its share ({why}): send it under another name (put --as)")
        parts = name.split("/")
        path = self.root.joinpath(*parts)
        parent = path.parent.resolve()
        if parent != self.root and self.root not in parent.parents:
            raise InvalidArgument(f"name {name!r} leads outside the share")
        for depth in range(1, len(parts)):
            folder, above = self.root.joinpath(*parts[:depth]), "/".join(parts[:depth])
            if folder.is_symlink():  # the share does not follow links: what went through one would not be shared
                raise FailedPrecondition(f"{above} is a symbolic link in this share, so {name} cannot go under it")
            if folder.exists() and not folder.is_dir():
                raise FailedPrecondition(f"{above} is a file in this share, so {name} cannot go under it")
        if path.is_dir():
            raise FailedPrecondition(f"{name} is a folder in this share; send the file under another name")
        return path

    def claim_for_serving(self) -> None:
        """One `serve` per share: a second would rescan, publish and clean up the same files
        beside the first (each lists them as its own; each removes what it takes for the other's
        abandoned transfers). Held until close(), by a lock the system drops if the process dies."""
        try:
            self._serving_lock = process_lock.claim(self.state_dir / "serving.lock")
        except process_lock.HeldElsewhere as held:
            raise FailedPrecondition(
                f"the share {self.root} is already served by another p2p-peer serve (pid {held.holder}); "
                "one serve per share folder"
            ) from None
        except OSError as exc:  # nowhere to write it (a full disk): serve, without the guard
            log.warning("cannot make sure no other serve shares %s (%s)", self.root, exc.strerror or exc)

    def close(self) -> None:
        self.cache.close()
        if self._serving_lock >= 0:
            os.close(self._serving_lock)  # and with it the lock
            self._serving_lock = -1


def _finished_download(known: SharedFile | None, st: os.stat_result) -> Manifest | None:
    """The manifest of a download into the share that has just finished at this name: its staged
    file, renamed into place (same inode and size, staging gone), needs no second hashing."""
    if known is None or known.staged is None or (known.inode, known.manifest.size) != (st.st_ino, st.st_size):
        return None
    return known.manifest if not known.staged.part_path.exists() else None


def open_unchanged(root: Path, shared: SharedFile) -> int:
    """Open a file shared from root for reading, refusing it if it changed since it was hashed."""
    try:
        fd = os.open(os.path.join(root, shared.name), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise NotFound(f"{shared.name} is gone: {exc.strerror}") from exc
    if not is_unchanged(fd, shared):
        os.close(fd)
        raise NotFound(f"{shared.name} changed since it was indexed; try again after the next rescan")
    return fd


def is_unchanged(fd: int, shared: SharedFile) -> bool:
    """Whether the file open at fd is still the one hashed. Checked again after each read while
    serving: write(2) into the file changes its mtime before its bytes, so a read that saw new
    bytes is followed by a check that sees it (writes through a memory map may show later: the
    downloader verifies every chunk anyway)."""
    st = os.fstat(fd)
    return stat.S_ISREG(st.st_mode) and (st.st_size, st.st_mtime_ns, st.st_ino) == (
        shared.manifest.size,
        shared.mtime_ns,
        shared.inode,
    )
