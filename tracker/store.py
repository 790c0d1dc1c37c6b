"""The directory's storage interface and domain types; no gRPC and no SQL here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from p2p_common.errors import ResourceExhausted, Unavailable


class StoreError(Exception):
    """Base of the store's expected errors."""


class AlreadyExists(StoreError):
    """The thing to create exists already."""


class TooBroad(StoreError):
    """A query would take longer than the store allows one query."""


class QueryStarved(StoreError):
    """A query ran out of time waiting for the processor (the tracker busy with other work, such
    as storing a large index), not for being broad: the same query may well pass a moment later."""


class TooManyFiles(StoreError):
    """An index would hold more files than allowed; nothing of it was applied."""

    def __init__(self, count: int):
        super().__init__(f"the index would hold {count} files")
        self.count = count


class ListedTwice(StoreError):
    """An index names one file twice; nothing of it was applied."""

    def __init__(self, name: str):
        super().__init__(f"file {name!r} listed twice")
        self.name = name


class SessionEnded(StoreError):
    """The session ended (logged out, expired, replaced by a new login) while its index was stored."""


class NotFound(StoreError):
    """The thing named does not exist."""


class CannotOpen(StoreError):
    """The database cannot be opened or created (the message says what to change)."""


# The store failing under a call (its disk full, an I/O error): the caller is told so with its
# status code (the only store errors that carry one: any call may meet them, and what it says does
# not depend on the call), and nothing of that call was recorded.
class StorageFull(StoreError, ResourceExhausted):
    """No room left to record anything."""


class StorageFailed(StoreError, Unavailable):
    """The store cannot be read or written now (the message says why)."""


@dataclass(frozen=True)
class Account:
    """A registered user; peers log in as accounts."""

    name: str
    password_hash: str
    disabled: bool = False  # kept out by the operator: its logins are refused, its name stays taken


@dataclass(frozen=True)
class Session:
    """A logged-in peer. An empty address means client-only: never listed as a source."""

    id: int  # its row: a replaced index moves the session to another (see Store.replace_index)
    account: str
    address: str
    expires_at: float
    token_hash: str  # what names the session for good


@dataclass(frozen=True)
class FileRecord:
    """One published file, as a peer described it."""

    name: str
    size: int
    sha256: str
    chunk_size: int
    chunk_list_sha256: str
    partial: bool = False  # the peer is still downloading it and holds only some chunks


@dataclass(frozen=True)
class Source:
    """A live serving peer that holds some content, and the name it shares it under."""

    peer_name: str
    address: str
    name: str
    partial: bool = False  # holds only some chunks so far


@dataclass(frozen=True)
class Match:
    """One distinct content (sha256) found by a query, with its live sources."""

    sha256: str
    name: str
    size: int
    chunk_size: int
    chunk_list_sha256: str
    sources: list[Source] = field(default_factory=list)
    matched_names: list[str] = field(default_factory=list)  # when shared under several: those matching


@dataclass(frozen=True)
class Query:
    """What to find. glob selects glob over substring matching of name_pattern, which matches
    regardless of case and accents, in any script (as the SQLite store's name_index.fold has it)."""

    name_pattern: str = ""
    glob: bool = False
    sha256: str = ""  # a whole sha256 or its first digits: contents starting with it
    after_sha256: str = ""  # keyset pagination: only contents ordered after this one
    limit: int = 100
    peer: str = ""  # an account: only contents its serving sessions hold under a matching name


@dataclass(frozen=True)
class PeerInfo:
    """A serving peer online now."""

    name: str
    address: str
    file_count: int


@dataclass(frozen=True)
class StoreStats:
    """The directory's size, for operators (GetStats)."""

    live_sessions: int
    serving_peers: int
    files: int
    contents: int
    accounts: int
    names_waiting: int  # published, not in the name index yet


class Store(Protocol):
    """Persistent directory state. Times are Unix seconds; `now` is passed in for testability."""

    def add_account(self, name: str, password_hash: str) -> None: ...
    def account(self, name: str) -> Account | None: ...
    def set_password(self, name: str, password_hash: str) -> int: ...  # its sessions ended, counted
    def set_disabled(self, name: str, disabled: bool) -> int: ...  # its sessions ended (when disabled), counted
    def delete_account(self, name: str) -> None: ...
    def accounts(self) -> list[Account]: ...  # by name

    def open_session(self, account: str, token_hash: str, address: str, expires_at: float, now: float) -> Session: ...
    def session_by_token(self, token_hash: str, now: float) -> Session | None: ...
    def renew_session(self, token_hash: str, expires_at: float) -> bool: ...
    def close_session(self, token_hash: str) -> None: ...
    def expire_sessions(self, now: float) -> int: ...
    def resume_sessions(self, expires_at: float) -> int: ...
    # The whole index of a session, taken from files as they come, and seen all at once or not
    # at all: ListedTwice, TooManyFiles, SessionEnded, or whatever files raises, applies none of it.
    def replace_index(self, token_hash: str, files: Iterable[FileRecord], max_files: int) -> int: ...
    def update_index(self, token_hash: str, add: list[FileRecord], remove: list[str], max_files: int) -> int: ...
    def query(self, query: Query, now: float) -> list[Match]: ...
    def live_peers(self, now: float, account: str, after: tuple[str, str], limit: int) -> list[PeerInfo]: ...
    def stats(self, now: float) -> StoreStats: ...

    def maintain(self, budget_seconds: float, prune_now: bool = False) -> bool: ...
    def secret(self, key: str, size: int) -> bytes: ...
    def close(self) -> None: ...
