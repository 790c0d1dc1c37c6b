"""The Store on SQLite: WAL, one connection per thread, a trigram index for name search."""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any

from p2p_common import process_lock
from tracker import name_index
from tracker.name_index import fold
from tracker.store import (
    Account,
    AlreadyExists,
    CannotOpen,
    FileRecord,
    ListedTwice,
    Match,
    NotFound,
    PeerInfo,
    Query,
    QueryStarved,
    Session,
    SessionEnded,
    Source,
    StorageFailed,
    StorageFull,
    StoreError,
    StoreStats,
    TooBroad,
    TooManyFiles,
)

log = logging.getLogger(__name__)

# SQLite's primary result codes of a database that cannot be used now, whatever the call (the
# others, such as a constraint broken, are the call's own and handled where it is made)
_STORAGE_FAILURES = frozenset(
    (
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
    )
)
MAX_SOURCES_PER_MATCH = 64  # keeps a popular file's result small; a sample spreads the load
MAX_MATCHED_NAMES = 1000  # names of one content listed as matching (identical files of one folder)
# Above this many candidate postings a name query walks contents in sha256 order instead, checking
# names until a page is full: at a million files "mp3" took 0.36 s through the index, 3 ms so.
BROAD_CANDIDATES = 20_000
QUERY_SECONDS = 2.0  # a pattern broad and rare at once ("a z") is refused rather than run for long
STARVED_BELOW = 0.5  # a query stopped with less than this share of QUERY_SECONDS on the processor was starved
thread_cpu = time.thread_time  # the processor time of the calling thread (SQLite's work included)
PACK_ABOVE = 8  # contents: the sources of more than this many come packed in one row (see _packed_rows)
CLOCK_CHECK_STEPS = 100_000  # SQLite VM steps between looks at the clock (~1 ms of work)
PRUNE_EVERY_SECONDS = 600.0  # a pruning pass reads every posting: rarely, in the background
# Commits never checkpoint the WAL (SQLite's default has the committing call copy it into the
# database: 1.6-2.0 s of a 100,000-file SendIndex's ~5 s); maintain() does, in the background.
CHECKPOINT_EVERY_SECONDS = 1.0
WAL_KEEP_BYTES = 64 << 20  # a WAL grown past this by a large commit is cut back once checkpointed
ENDED = 0.0  # sessions.expires_at of a session ended (see _end_sessions); its files are deleted later
STAGING = -1.0  # sessions.expires_at of a row holding an index being stored (see replace_index): never live
# A replacement index is stored this many files per write transaction: in one, a million files
# held the database 14 s, and every login and heartbeat waited; in slices of 20,000, ~0.3 s each.
STAGE_SLICE = 20_000
# Files of ended sessions deleted per write transaction, in id order. Each slice rewrites most
# pages of the one index not in id order (by session and name), so larger slices cost less in all
# but keep writers waiting longer: a million files took 10 s in slices of 50,000 (0.5 s each),
# 14 s in 20,000 (0.3 s); in one transaction, 3.9 s, with every login and heartbeat waiting.
PURGE_SLICE = 50_000
_ENDED_FILES = f"session_id IN (SELECT id FROM sessions WHERE expires_at={ENDED})"  # the files of ended sessions


def _schema() -> str:
    return resources.files("tracker").joinpath("schema.sql").read_text()


class SqliteStore:
    """Store backed by one SQLite file (or ':memory:', shared through a single connection).

    One store serves a database at a time (a lock file beside it, `tracker.db.lock`): two
    trackers on one database would each reap, resume and index the other's sessions, and a newer
    version would upgrade the schema under an older one still serving. accounts_only opens it
    beside a running tracker, for managing accounts: no lock, and the name index is neither
    upgraded nor loaded (~4 s at a million files); such a store answers no queries."""

    def __init__(self, path: str, accounts_only: bool = False):
        self._path = path
        self._memory = path == ":memory:"
        self._accounts_only = accounts_only
        self._lock_fd = -1  # see the class docstring
        self._write_lock = threading.RLock()  # one writer at a time; readers never wait (WAL)
        self._writer: sqlite3.Connection | None = None  # used under _write_lock only
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []  # read connections, the most recently used last
        self._closed = False  # by close(): no connection opens after it, and one lent out closes when given back
        self._tidy_cursor = 0  # where name-index upkeep resumes
        self._purge_cursor: int | None = None  # the file id the deletion of ended sessions' files resumes at
        self._staging: set[int] = set()  # rows of the indexes replace_index is storing now (under _write_lock)
        self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS  # when the next pruning pass may start
        self._next_checkpoint = 0.0  # monotonic time the next WAL checkpoint may run
        self._checkpoint_lock = threading.Lock()
        self._checkpointer: sqlite3.Connection | None = None  # used under _checkpoint_lock only
        self._vocabulary = name_index.Vocabulary()
        try:
            self._open()
        except CannotOpen:
            self.close()
            raise
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise CannotOpen(_why_not_opened(path, exc)) from None

    def _open(self) -> None:
        """Create the database (and its folder) or upgrade it, then load the name index."""
        if not self._memory and os.path.dirname(self._path):
            os.makedirs(os.path.dirname(self._path), exist_ok=True)
        with self._write_lock:
            writer = self._writer_conn()  # a file that is no database fails here, before the lock file
            if self._accounts_only:
                writer.executescript(_schema())
                _add_missing_columns(writer)
                return
            self._claim()
            name_index.set_aside_old_postings(writer)
            writer.executescript(_schema())
            _add_missing_columns(writer)
            name_index.upgrade(writer)
            name_index.refold(writer)
        with self._read() as c:
            self._vocabulary.load(c)

    def _claim(self) -> None:
        if self._memory:
            return
        try:
            self._lock_fd = process_lock.claim(Path(self._path + ".lock"))
        except process_lock.HeldElsewhere as held:
            raise CannotOpen(
                f"the database {self._path} is already served by another p2p-tracker (pid {held.holder}); "
                "one tracker per database"
            ) from None
        except OSError as exc:
            raise CannotOpen(f"cannot create {self._path}.lock beside the database: {exc.strerror or exc}") from None

    # -- connections -------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        # Connections move between threads (never used by two at once), hence check_same_thread.
        conn = sqlite3.connect(self._path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 30000")
        if not self._memory:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable across app crashes, fast commits
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # see CHECKPOINT_EVERY_SECONDS
            conn.execute(f"PRAGMA journal_size_limit = {WAL_KEEP_BYTES}")
        conn.execute("PRAGMA cache_size = -131072")  # 128 MiB a connection at most; reads go through mmap
        conn.execute("PRAGMA mmap_size = 4294967296")  # read pages straight from the OS cache, no syscalls
        with self._pool_lock:
            if self._closed:
                conn.close()
                raise StorageFailed(f"the database {self._path} is closed: the tracker is stopping")
        return conn

    def _writer_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = self._connect()
        return self._writer

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read connection: the most recently used idle one, whose caches are warm.

        (One connection per RPC thread made each query fault in its pages anew: a sync gRPC
        server hands consecutive calls to different threads.)
        """
        if self._memory:  # one database, one connection
            with self._write_lock, self._failures():
                yield self._writer_conn()
            return
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        try:
            with self._failures():
                if conn is None:
                    conn = self._connect()
                yield conn
        finally:
            if conn is not None:
                with self._pool_lock:
                    if self._closed:
                        conn.close()
                    else:
                        self._idle.append(conn)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock, self._failures():
            conn = self._writer_conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT (disk full, I/O error) may have rolled back itself
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """SQLite failing under a call (disk full, I/O error, a lock held too long) as the store's
        StorageFull or StorageFailed, which tell the caller, and an error line for the operator."""
        try:
            yield
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
            if code == sqlite3.SQLITE_FULL:
                log.error("database %s: the disk is full; nothing can be recorded until there is room", self._path)
                raise StorageFull("the tracker's disk is full: it can record nothing until its operator makes room") from exc
            if code not in _STORAGE_FAILURES:
                raise
            log.error("database %s failed: %s", self._path, exc)
            raise StorageFailed(f"the tracker's database failed ({exc}); try again later") from exc

    def close(self) -> None:
        """Close the connections; one a reader uses now is closed when it is given back (closed
        under a running query, by a tracker stopping while its upkeep thread read, it crashed
        the process)."""
        with self._write_lock, self._checkpoint_lock, self._pool_lock:
            self._closed = True
            for conn in (*self._idle, self._writer, self._checkpointer):
                if conn is not None:
                    conn.close()
            self._idle.clear()
            self._writer = None
            self._checkpointer = None
        if self._lock_fd >= 0:  # after every connection: the next tracker may start now
            os.close(self._lock_fd)
            self._lock_fd = -1

    # -- accounts ----------------------------------------------------------------------
    def add_account(self, name: str, password_hash: str) -> None:
        try:
            with self._write() as c:
                c.execute(
                    "INSERT INTO accounts(name, password_hash, created_at) VALUES (?,?,?)", (name, password_hash, time.time())
                )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"account {name!r} already exists") from exc

    def account(self, name: str) -> Account | None:
        with self._read() as c:
            row = c.execute("SELECT name, password_hash, disabled FROM accounts WHERE name=?", (name,)).fetchone()
        return _account(row) if row else None

    def set_password(self, name: str, password_hash: str) -> int:
        with self._write() as c:
            if c.execute("UPDATE accounts SET password_hash=? WHERE name=?", (password_hash, name)).rowcount == 0:
                raise NotFound(f"no account {name!r}")
            return self._end_sessions(c, "account=?", (name,))

    def set_disabled(self, name: str, disabled: bool) -> int:
        with self._write() as c:
            if c.execute("UPDATE accounts SET disabled=? WHERE name=?", (int(disabled), name)).rowcount == 0:
                raise NotFound(f"no account {name!r}")
            return self._end_sessions(c, "account=?", (name,)) if disabled else 0

    def delete_account(self, name: str) -> None:
        with self._write() as c:  # its sessions and their files go by ON DELETE CASCADE
            if c.execute("DELETE FROM accounts WHERE name=?", (name,)).rowcount == 0:
                raise NotFound(f"no account {name!r}")

    def accounts(self) -> list[Account]:
        with self._read() as c:
            return [_account(r) for r in c.execute("SELECT name, password_hash, disabled FROM accounts ORDER BY name")]

    def back_up_accounts(self, dest: str) -> int:
        """Copy the accounts and the tracker's secrets, as of one moment, into a new database at
        dest, written aside and then renamed (never half-written); a tracker started on it has
        them. Sessions and shared files are left out: peers publish theirs again when they log
        in, and a restored backup's would list peers long gone. Returns the accounts copied."""
        if self._memory:
            raise CannotOpen("a database in memory (:memory:) has nothing to back up")
        if os.path.isdir(dest):
            raise CannotOpen(
                f"{dest} is a folder; give a file path for the backup, such as {os.path.join(dest, 'tracker-backup.db')}"
            )
        if os.path.exists(dest) and os.path.samefile(dest, self._path):
            raise CannotOpen(f"{dest} is the database itself; back it up to another file")
        aside = f"{dest}.{os.getpid()}.tmp"
        try:
            with suppress(FileNotFoundError):
                os.unlink(aside)  # a run killed before could leave one
            copy = sqlite3.connect(aside, isolation_level=None)  # one self-contained file (no WAL)
            try:
                copy.executescript(_schema())
                copy.execute("ATTACH DATABASE ? AS live", (self._path,))
                copy.execute("BEGIN")  # one read snapshot of the live database for both tables
                copy.execute(
                    "INSERT INTO accounts(name, password_hash, created_at, disabled)"
                    " SELECT name, password_hash, created_at, disabled FROM live.accounts"
                )
                copy.execute("INSERT OR REPLACE INTO meta(key, value) SELECT key, value FROM live.meta")
                (count,) = copy.execute("SELECT count(*) FROM accounts").fetchone()
                copy.execute("COMMIT")
                copy.execute("DETACH DATABASE live")
            finally:
                copy.close()
            with open(aside, "rb") as f:
                os.fsync(f.fileno())
            os.replace(aside, dest)
        except sqlite3.Error as exc:
            why = "its folder does not exist or is not writable" if "unable to open" in str(exc) else str(exc)
            raise CannotOpen(f"cannot write the backup {dest}: {why}") from None
        finally:
            with suppress(FileNotFoundError):
                os.unlink(aside)  # left only when it failed
        return int(count)

    # -- sessions ----------------------------------------------------------------------
    def open_session(self, account: str, token_hash: str, address: str, expires_at: float, now: float) -> Session:
        with self._write() as c:
            if address:  # the same peer logging in again replaces its own older session
                self._end_sessions(c, "account=? AND address=?", (account, address))
            cur = c.execute(
                "INSERT INTO sessions(account, token_hash, address, expires_at, created_at) VALUES (?,?,?,?,?)",
                (account, token_hash, address, expires_at, now),
            )
            return Session(int(cur.lastrowid or 0), account, address, expires_at, token_hash)

    def session_by_token(self, token_hash: str, now: float) -> Session | None:
        with self._read() as c:
            row = c.execute(
                "SELECT id, account, address, expires_at, token_hash FROM sessions WHERE token_hash=? AND expires_at>?",
                (token_hash, now),
            ).fetchone()
        return Session(*row) if row else None

    def renew_session(self, token_hash: str, expires_at: float) -> bool:
        with self._write() as c:
            # not an ended one (0): a heartbeat racing a logout revives nothing
            renewed = c.execute("UPDATE sessions SET expires_at=? WHERE token_hash=? AND expires_at>0", (expires_at, token_hash))
            return renewed.rowcount == 1

    def close_session(self, token_hash: str) -> None:
        with self._write() as c:
            self._end_sessions(c, "token_hash=?", (token_hash,))

    def expire_sessions(self, now: float) -> int:
        with self._write() as c:
            return self._end_sessions(c, "expires_at<=?", (now,))

    def resume_sessions(self, expires_at: float) -> int:
        """Every stored session lives on until expires_at (see Directory.resume_sessions); ended ones stay ended."""
        with self._write() as c:
            return c.execute(
                "UPDATE sessions SET expires_at=? WHERE expires_at>0 AND expires_at<>?", (expires_at, expires_at)
            ).rowcount

    @staticmethod
    def _end_sessions(c: sqlite3.Connection, where: str, args: tuple[object, ...]) -> int:
        """End the sessions matching where: from now on no query lists them and no call may use
        them. Their files are deleted by maintain(), a slice at a time: deleted here, a peer of
        a million files took ~4 s to log out, and every login and heartbeat waited for it. (Rows
        ended already, or STAGING, are not sessions: expires_at <= 0.)"""
        return c.execute(f"UPDATE sessions SET expires_at=? WHERE ({where}) AND expires_at>0", (ENDED, *args)).rowcount

    def _purge_ended(self, c: sqlite3.Connection) -> bool:
        """Delete a slice of the ended sessions' files, and the sessions once none is left; True
        while more remain. A few files go at once; many, a range of PURGE_SLICE file ids at a time."""
        if self._purge_cursor is None:
            left = c.execute(f"SELECT count(*) FROM (SELECT 1 FROM files WHERE {_ENDED_FILES} LIMIT ?)", (PURGE_SLICE,))
            if left.fetchone()[0] < PURGE_SLICE:
                c.execute("DELETE FROM sessions WHERE expires_at=?", (ENDED,))  # their files by ON DELETE CASCADE
                return False
            (self._purge_cursor,) = c.execute(f"SELECT min(id) FROM files WHERE {_ENDED_FILES}").fetchone()
        start = int(self._purge_cursor or 0)
        c.execute(f"DELETE FROM files WHERE id>=? AND id<? AND {_ENDED_FILES}", (start, start + PURGE_SLICE))
        (last,) = c.execute("SELECT max(id) FROM files").fetchone()
        self._purge_cursor = start + PURGE_SLICE if last is not None and last >= start + PURGE_SLICE else None
        return True

    def _has_ended_sessions(self) -> bool:
        with self._read() as c:
            return c.execute("SELECT 1 FROM sessions WHERE expires_at=? LIMIT 1", (ENDED,)).fetchone() is not None

    # -- index -------------------------------------------------------------------------
    @staticmethod
    def _insert(c: sqlite3.Connection, session_id: int, files: list[FileRecord]) -> None:
        if not files:
            return
        (last_id,) = c.execute("SELECT coalesce(max(id), 0) FROM files").fetchone()
        last_id = max(last_id, name_index.watermark(c))  # ids only grow: the index is written behind
        # in sha256 order, the files_by_sha256 index takes them page by page: 100,000 files insert
        # and commit ~30% faster than in the order they came (measured at a million files)
        rows = [
            (last_id + 1 + i, session_id, f.name, fold(f.name), f.size, f.sha256, f.chunk_size, f.chunk_list_sha256, f.partial)
            for i, f in enumerate(sorted(files, key=lambda record: record.sha256))
        ]
        try:
            c.executemany(
                "INSERT INTO files(id, session_id, name, name_folded, size, sha256, chunk_size, chunk_list_sha256, partial)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                rows,
            )
        except sqlite3.IntegrityError:  # UNIQUE (session_id, name): which name?
            names = [f.name for f in files]
            twice = next((n for n, k in Counter(names).items() if k > 1), None)
            if twice is None:  # one stored by an earlier slice of the same index
                found = c.execute(  # (ids up to last_id: not one this statement inserted before it failed)
                    "SELECT name FROM files WHERE session_id=? AND id<=? AND name IN (SELECT value FROM json_each(?)) LIMIT 1",
                    (session_id, last_id, json.dumps(names)),
                ).fetchone()
                twice = found[0] if found else None
            if twice is None:
                raise
            raise ListedTwice(twice) from None

    @staticmethod
    def _delete_files(c: sqlite3.Connection, session_id: int, names: list[str]) -> None:
        """Delete the files named of a session (their postings are pruned later)."""
        c.executemany("DELETE FROM files WHERE session_id=? AND name=?", [(session_id, n) for n in names])

    @staticmethod
    def _count(c: sqlite3.Connection, session_id: int) -> int:
        return int(c.execute("SELECT count(*) FROM files WHERE session_id=?", (session_id,)).fetchone()[0])

    def replace_index(self, token_hash: str, files: Iterable[FileRecord], max_files: int = 1 << 62) -> int:
        """The session's whole index, stored a slice at a time, and seen all at once.

        The files go under a row of their own (expires_at STAGING: no query lists it), a write
        transaction of STAGE_SLICE files at a time, as files yields them: logins, heartbeats and
        others' publishing wait for a slice, not for the whole index (a million files: 14 s), and
        the caller need not hold it all in memory (a million files cost the tracker 1 GB). Then
        one short transaction moves the session (token, address, lease) onto that row and ends
        the old one, whose files the upkeep deletes. Whatever fails on the way (an entry found
        bad as files yields it, a full disk, a stream cut) ends the new row instead: nothing of it
        is ever seen, and the old index stays."""
        entries = iter(files)
        staging = self._open_staging(token_hash)
        try:
            count = 0
            while part := list(islice(entries, STAGE_SLICE)):
                count += len(part)
                if count > max_files:
                    raise TooManyFiles(count + sum(1 for _ in entries))
                with self._write() as c:
                    self._insert(c, staging, part)
            with self._write() as c:
                self._move_session(c, token_hash, staging)
            return count
        except BaseException:
            with suppress(StoreError, sqlite3.Error), self._write() as c:  # else maintain() ends it
                c.execute("UPDATE sessions SET expires_at=? WHERE id=?", (ENDED, staging))
            raise
        finally:
            with self._write_lock:
                self._staging.discard(staging)

    def _open_staging(self, token_hash: str) -> int:
        with self._write() as c:
            row = _session_row(c, token_hash, "account, address", "the session has ended")
            cur = c.execute(
                "INSERT INTO sessions(account, token_hash, address, expires_at, created_at) VALUES (?,?,?,?,?)",
                (row[0], f"staging:{secrets.token_hex(16)}", row[1], STAGING, time.time()),
            )
            staging = int(cur.lastrowid or 0)
            self._staging.add(staging)  # in the transaction: maintain() never takes it for abandoned
            return staging

    @staticmethod
    def _move_session(c: sqlite3.Connection, token_hash: str, staging: int) -> None:
        """The session of token_hash now is row staging, with its files; its old row is ended."""
        old = _session_row(c, token_hash, "id, expires_at, created_at", "the session ended while its index was stored")
        c.execute("UPDATE sessions SET token_hash=?, expires_at=? WHERE id=?", (f"replaced:{old[0]}", ENDED, old[0]))
        c.execute(
            "UPDATE sessions SET token_hash=?, expires_at=?, created_at=? WHERE id=?", (token_hash, old[1], old[2], staging)
        )

    def _end_abandoned_staging(self) -> None:
        """Rows of indexes no replace_index is storing any more (one that could not even end its
        row, as on a full disk; a tracker stopped half-way) are ended, for the purge."""
        with self._read() as c:
            rows = [r[0] for r in c.execute("SELECT id FROM sessions WHERE expires_at=?", (STAGING,))]
        with self._write_lock:
            abandoned = [(ENDED, r, STAGING) for r in rows if r not in self._staging]
            if abandoned:
                with self._write() as c:
                    c.executemany("UPDATE sessions SET expires_at=? WHERE id=? AND expires_at=?", abandoned)

    def update_index(self, token_hash: str, add: list[FileRecord], remove: list[str], max_files: int = 1 << 62) -> int:
        with self._write() as c:
            row = _session_row(c, token_hash, "id", "the session has ended")
            self._delete_files(c, row[0], [*remove, *(f.name for f in add)])
            self._insert(c, row[0], add)
            count = self._count(c, row[0])
            if count > max_files:
                raise TooManyFiles(count)  # rolled back whole
            return count

    # -- queries -----------------------------------------------------------------------
    def _matching_contents(self, c: sqlite3.Connection, q: Query, now: float) -> list[str]:
        runs = []
        if q.name_pattern and not q.sha256:
            runs = name_index.runs_to_intersect(self._vocabulary, q.name_pattern, q.glob, BROAD_CANDIDATES)
        if len(runs) == 1 and not q.glob and runs[0].run == q.name_pattern and not q.peer:
            return self._contents_of_word_run(c, q, runs[0], now)
        candidates = name_index.candidates_sql(self._vocabulary, runs) if runs else None
        # without candidates (a sha256 given, a pattern without words like "*.*", or very common
        # words) the walk in sha256 order stops at the first page of matches
        return self._first_contents(c, q, candidates, now)

    def _first_contents(
        self, c: sqlite3.Connection, q: Query, candidates: tuple[str, list[object]] | None, now: float, packed: bool = False
    ) -> list[str]:
        """The first page of contents (sha256 order) that match q among the candidate files
        (packed: when a page of many rows is expected, see _packed_rows)."""
        where = ["s.expires_at > ?", "s.address <> ''"]
        args: list[object] = [now]
        # one range of the sha256 index (SQLite takes only one lower bound from it: give it the higher)
        if q.sha256 and q.after_sha256 < q.sha256:
            where.append("f.sha256 >= ?")
            args.append(q.sha256)
        else:
            where.append("f.sha256 > ?")
            args.append(q.after_sha256)
        if q.sha256:  # every sha256 starting with these hex digits sorts below the digits + 'g'
            where.append("f.sha256 < ?")
            args.append(q.sha256 + "g")
        if candidates is not None:
            where.append(candidates[0])
            args.extend(candidates[1])
        if q.name_pattern:
            where.append("f.name_folded GLOB ?")  # the exact check; substrings become globs too
            args.append(_as_glob(q))
        joined = "files f JOIN sessions s"
        if q.peer:  # without candidates, walk the account's files (CROSS JOIN: its sessions first), not
            # every file; with them, walk the candidates and check each one's account ('+': not by its index)
            joined = "sessions s CROSS JOIN files f" if candidates is None else joined
            where.append("s.account = ?" if candidates is None else "+s.account = ?")
            args.append(q.peer)
        rest = f"FROM {joined} ON s.id = f.session_id WHERE " + " AND ".join(where)
        rest += " GROUP BY f.sha256 ORDER BY f.sha256 LIMIT ?"
        if packed:
            return sorted(row[0] for row in _packed_rows(c, ["f.sha256"], rest, [*args, q.limit]))
        return [row[0] for row in c.execute(f"SELECT f.sha256 {rest}", [*args, q.limit])]

    def _contents_of_word_run(self, c: sqlite3.Connection, q: Query, run: name_index.Candidates, now: float) -> list[str]:
        """A pattern that is one run of letters and digits ("kaiwe") is in every name holding a word
        that contains it. Those postings are taken in sha256 order (by their sha_key, sorted by
        SQLite from the postings alone) and only the files of the first page are fetched, not every
        file (a word in 1,000 names: ~1.5 ms -> ~0.5)."""
        word_ids = json.dumps(run.word_ids)
        start = name_index.sha_key(q.after_sha256) if q.after_sha256 else 0
        take = q.limit + 16
        while True:
            postings = _packed_rows(
                c,
                ["sha_key", "file_id"],
                f"{name_index.WORD_POSTINGS} AND sha_key >= ? ORDER BY sha_key LIMIT ?",
                [word_ids, start, take],
            )
            page = self._first_contents(c, q, name_index.ids_sql([file_id for _, file_id in postings]), now, packed=True)
            # Cut short, the last key may have more postings past the cut: only contents below it
            # are known whole (files not indexed yet, which every query checks, may lie past it).
            bound = max(key for key, _ in postings) if len(postings) == take else None
            if bound is not None:
                page = [sha for sha in page if name_index.sha_key(sha) < bound]
            if bound is None or len(page) == q.limit:
                return page
            take *= 8  # dead sessions' and deleted files' postings took places: read further

    def query(self, query: Query, now: float) -> list[Match]:
        with self._read() as c:
            # One snapshot for all of the query's statements, taken before the in-memory index is
            # read. The index is written behind: a catch-up adds to memory, then commits. A file
            # it committed before the snapshot is in memory by then; one it had not is still "not
            # indexed yet" in the snapshot, and checked as such. Read otherwise (memory, then a
            # snapshot; or postings and the watermark in two snapshots), a catch-up in between
            # hid the files it had just indexed.
            c.execute("BEGIN")
            c.execute("SELECT upto FROM index_progress").fetchone()  # the snapshot starts here
            try:
                folded = replace(query, name_pattern=fold(query.name_pattern))
                contents, found = self._query_rows(c, folded, now)
                matched = self._names_matched(c, folded, found, now)
            finally:
                if c.in_transaction:
                    c.execute("COMMIT")
        found.sort(key=lambda r: (r[0], r[1], r[5]))  # by content, then name and peer
        by_content: dict[str, list[Sequence]] = defaultdict(list)
        for row in found:
            by_content[row[0]].append(row)
        return [_match(by_content[sha], matched.get(sha, set()), query.peer) for sha in contents if by_content[sha]]

    def _names_matched(self, c: sqlite3.Connection, q: Query, rows: list[Any], now: float) -> dict[str, set[str]]:
        """For the contents shared under several names (rows: their sources), the names that match
        q's pattern: `get --all 'project/*'` fetches two identical files as both. Rare: one more
        statement for those only."""
        if not q.name_pattern:
            return {}
        names: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            names[row[0]].add(row[1])
        several = [sha for sha, held in names.items() if len(held) > 1]
        if not several:
            return {}
        matched: dict[str, set[str]] = defaultdict(set)
        rest = f"FROM files f JOIN sessions s ON s.id = f.session_id WHERE f.sha256 IN ({','.join('?' * len(several))})"
        rest += " AND s.expires_at > ? AND s.address <> '' AND f.name_folded GLOB ?"
        args = [*several, now, _as_glob(q)]
        if q.peer:
            rest += " AND s.account = ?"
            args.append(q.peer)
        for sha, name in c.execute(f"SELECT f.sha256, f.name {rest}", args):
            matched[sha].add(name)
        return matched

    def _query_rows(self, c: sqlite3.Connection, query: Query, now: float) -> tuple[list[str], list[Any]]:
        """The contents of the page, in order, and the rows of their live sources (query folded)."""
        deadline, cpu_at_start = time.monotonic() + QUERY_SECONDS, thread_cpu()
        c.set_progress_handler(lambda: time.monotonic() > deadline, CLOCK_CHECK_STEPS)
        try:
            contents = self._matching_contents(c, query, now)
        except sqlite3.OperationalError as exc:
            if "interrupt" not in str(exc):
                raise
            cpu = thread_cpu() - cpu_at_start
            if cpu < STARVED_BELOW * QUERY_SECONDS:  # no fault of the pattern's: telling to narrow it would mislead
                got = f"got {cpu:.1f} s of processor in {QUERY_SECONDS:.0f} s"
                raise QueryStarved(f"searching for {query.name_pattern!r} {got}") from None
            raise TooBroad(f"searching for {query.name_pattern!r} took over {QUERY_SECONDS:.0f} s") from None
        finally:
            c.set_progress_handler(None, 0)
        if not contents:
            return [], []
        marks = ",".join("?" * len(contents))
        columns = ["f.sha256", "f.name", "f.size", "f.chunk_size", "f.chunk_list_sha256", "s.account", "s.address", "f.partial"]
        rest = f"FROM files f JOIN sessions s ON s.id = f.session_id WHERE f.sha256 IN ({marks})"
        rest += " AND s.expires_at > ? AND s.address <> ''"
        if len(contents) > PACK_ABOVE:
            return contents, _packed_rows(c, columns, rest, [*contents, now])
        return contents, c.execute(f"SELECT {', '.join(columns)} {rest}", [*contents, now]).fetchall()

    def live_peers(self, now: float, account: str = "", after: tuple[str, str] = ("", ""), limit: int = 1000) -> list[PeerInfo]:
        """In (account, address) order, past after, through the index on both (a page of 1,000 of
        10,000 peers with a million files: ~6 ms, where all of them took 60)."""
        where = "s.expires_at > ? AND s.address <> '' AND (s.account, s.address) > (?, ?)"
        args: list[Any] = [now, *after]
        if account:
            where += " AND s.account = ?"
            args.append(account)
        with self._read() as c:
            rows = c.execute(
                "SELECT s.account, s.address, (SELECT count(*) FROM files f WHERE f.session_id = s.id)"
                f" FROM sessions s INDEXED BY sessions_by_account WHERE {where} ORDER BY s.account, s.address LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [PeerInfo(*r) for r in rows]

    def stats(self, now: float) -> StoreStats:
        """Counted in one snapshot; the distinct contents take a walk of the sha256 index
        (~0.3 s at a million files: callers cache it)."""
        with self._read() as c:
            c.execute("BEGIN")
            try:
                live, serving = c.execute(
                    "SELECT count(*), count(*) FILTER (WHERE address <> '') FROM sessions WHERE expires_at > ?", (now,)
                ).fetchone()
                (files,) = c.execute("SELECT count(*) FROM files").fetchone()
                (contents,) = c.execute("SELECT count(DISTINCT sha256) FROM files").fetchone()
                (accounts,) = c.execute("SELECT count(*) FROM accounts").fetchone()
                (waiting,) = c.execute(f"SELECT count(*) FROM ({name_index.NOT_YET_INDEXED})").fetchone()
            finally:
                if c.in_transaction:
                    c.execute("COMMIT")
        return StoreStats(live, serving, files, contents, accounts, waiting)

    def maintain(self, budget_seconds: float = 0.2, prune_now: bool = False) -> bool:
        """Tidy the store a slice at a time for up to budget_seconds; True while work remains.

        The files of ended sessions are deleted first (see _end_sessions). New files are indexed
        at once; a pass pruning stale postings starts at most every PRUNE_EVERY_SECONDS (it reads
        every posting), unless prune_now. Then the WAL is checkpointed: when the work is done, else
        at most every CHECKPOINT_EVERY_SECONDS (until then a large commit's pages are read from the
        WAL with a system call each).
        """
        deadline = time.monotonic() + budget_seconds
        self._end_abandoned_staging()
        purging = self._has_ended_sessions()
        while purging and time.monotonic() < deadline:
            with self._write() as c:
                purging = self._purge_ended(c)
        more = True
        while more and time.monotonic() < deadline:
            prune = self._tidy_cursor > 0 or prune_now or time.monotonic() >= self._next_prune
            with self._write() as c:
                more, self._tidy_cursor = name_index.tidy(c, self._vocabulary, self._tidy_cursor, prune)
            if prune and self._tidy_cursor == 0:
                self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                prune_now = False
        if not more or time.monotonic() >= self._next_checkpoint:
            self.checkpoint()
        return more or purging

    def checkpoint(self) -> tuple[int, int]:
        """Copy committed WAL frames into the database file without holding up writers or readers.

        Runs on a connection of its own, outside the write lock (a PASSIVE checkpoint takes no
        lock a writer needs). Returns (frames in the WAL, frames checkpointed); (0, 0) in memory.
        """
        if self._memory:
            return 0, 0
        with self._checkpoint_lock, self._failures():
            if self._checkpointer is None:
                self._checkpointer = self._connect()
            _, frames, copied = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self._next_checkpoint = time.monotonic() + CHECKPOINT_EVERY_SECONDS
        return int(frames), int(copied)

    def secret(self, key: str, size: int) -> bytes:
        with self._write() as c:
            row = c.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            if row:
                return bytes(row[0])
            value = secrets.token_bytes(size)
            c.execute("INSERT INTO meta(key, value) VALUES (?,?)", (key, value))
            return value


def _session_row(c: sqlite3.Connection, token_hash: str, columns: str, ended: str) -> Any:
    """columns of the row of token_hash's session, lapsed or not; SessionEnded (saying ended) if it
    has ended (expires_at 0) or there is none. (STAGING rows, -1, are never a session's.)"""
    row = c.execute(f"SELECT {columns} FROM sessions WHERE token_hash=? AND expires_at>0", (token_hash,)).fetchone()
    if row is None:
        raise SessionEnded(ended)
    return row


def _packed_rows(c: sqlite3.Connection, columns: list[str], rest: str, args: list[object]) -> list[Any]:
    """The rows of SELECT columns rest, packed by SQLite into one JSON value (in no set order).

    The sqlite3 module hands the GIL back and forth at every row: with several RPC threads doing
    so at once, a query of 50 rows ran 1.5-3x slower than alone (measured in-process, 8 threads).
    One packed row does not; for a handful of rows, plain fetching is cheaper.
    """
    names = ", ".join(column.rsplit(".", 1)[-1] for column in columns)
    sql = f"SELECT json_group_array(json_array({names})) FROM (SELECT {', '.join(columns)} {rest})"
    return json.loads(c.execute(sql, args).fetchone()[0])


def _why_not_opened(path: str, exc: sqlite3.Error | OSError) -> str:
    """Why the database at path did not open, as one line that says what to change."""
    if os.path.isdir(path):
        return f"the database {path} is a folder; give a file path, such as {os.path.join(path, 'tracker.db')}"
    if isinstance(exc, OSError):
        return f"cannot create the folder of the database {path}: {exc.strerror or exc}"
    if "not a database" in str(exc):
        return f"{path} is not a tracker database (nor any SQLite database); give a new file and the tracker makes one"
    if "unable to open" in str(exc):
        return f"cannot open or create the database {path} (can this user write in {os.path.dirname(os.path.abspath(path))}?)"
    return f"cannot open the database {path}: {exc}"


def _as_glob(q: Query) -> str:
    """q's (folded) pattern as a GLOB over whole folded names: substrings become globs too."""
    return q.name_pattern if q.glob else f"*{_glob_escape(q.name_pattern)}*"


def _glob_escape(text: str) -> str:
    """text matched literally inside a GLOB pattern."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _match(rows: list[Sequence], matched: set[str], peer: str = "") -> Match:
    """Group one content's rows; a source whose size or chunk list disagrees with the majority is
    left out (listed, a lie about either would fail every honest source's manifest check).
    matched: the names of the content that match the query, when it has several. peer: the
    account being browsed: the match takes its name, size and chunk list, and lists its sources."""
    if len(rows) == 1:  # the common case: no vote to hold
        agreeing, (size, *chunking) = rows, (rows[0][2], rows[0][3], rows[0][4])
    else:  # browsing a peer, what it says wins (its files are what was asked for), else the most
        voters = [r for r in rows if r[5] == peer] or rows
        size, *chunking = Counter((r[2], r[3], r[4]) for r in voters).most_common(1)[0][0]
        agreeing = [r for r in rows if (r[2], r[3], r[4]) == (size, *chunking)]
    sources = [Source(peer_name=r[5], address=r[6], name=r[1], partial=bool(r[7])) for r in agreeing]
    first = agreeing[0]
    if peer:  # browsing: that peer's name, and its sources listed whatever the sample
        first = next((r for r in agreeing if r[5] == peer), first)
        own = [s for s in sources if s.peer_name == peer][:MAX_SOURCES_PER_MATCH]
        others = _whole_first([s for s in sources if s.peer_name != peer], MAX_SOURCES_PER_MATCH - len(own))
        sources = sorted(own + others, key=lambda s: s.partial)
    else:
        sources = _whole_first(sources, MAX_SOURCES_PER_MATCH)
    return Match(
        sha256=first[0],
        name=first[1],
        size=size,
        chunk_size=chunking[0],
        chunk_list_sha256=chunking[1],
        sources=sources,
        matched_names=sorted({r[1] for r in agreeing} & matched)[:MAX_MATCHED_NAMES],
    )


def _whole_first(sources: list[Source], room: int) -> list[Source]:
    """At most room of sources, those holding the content whole first; a random sample when there
    are more (it spreads a popular content's load)."""
    whole, partial = [s for s in sources if not s.partial], [s for s in sources if s.partial]
    if len(sources) > room:
        whole = random.sample(whole, min(len(whole), room))
        partial = random.sample(partial, min(len(partial), room - len(whole)))
    return whole + partial


def _account(row: Sequence) -> Account:
    return Account(row[0], row[1], bool(row[2]))


def _add_missing_columns(c: sqlite3.Connection) -> None:
    """Databases of earlier versions lack files.partial and accounts.disabled: add them (instant:
    a constant default; a tracker of that version still serving beside `user` ignores them)."""
    for table, column in (("files", "partial"), ("accounts", "disabled")):
        if column not in {row[1] for row in c.execute(f"PRAGMA table_info({table})")}:
            c.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
