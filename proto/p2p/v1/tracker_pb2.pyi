from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IndexMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_MODE_UNSPECIFIED: _ClassVar[IndexMode]
    INDEX_MODE_REPLACE: _ClassVar[IndexMode]
    INDEX_MODE_UPDATE: _ClassVar[IndexMode]
INDEX_MODE_UNSPECIFIED: IndexMode
INDEX_MODE_REPLACE: IndexMode
INDEX_MODE_UPDATE: IndexMode

class LoginRequest(_message.Message):
    __slots__ = ("name", "password", "address")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    password: str
    address: str
    def __init__(self, name: _Optional[str] = ..., password: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("session_token", "lease_seconds", "registered", "address", "reachability_problem")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REACHABILITY_PROBLEM_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    lease_seconds: int
    registered: bool
    address: str
    reachability_problem: str
    def __init__(self, session_token: _Optional[str] = ..., lease_seconds: _Optional[int] = ..., registered: _Optional[bool] = ..., address: _Optional[str] = ..., reachability_problem: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("lease_seconds", "reachability_problem")
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REACHABILITY_PROBLEM_FIELD_NUMBER: _ClassVar[int]
    lease_seconds: int
    reachability_problem: str
    def __init__(self, lease_seconds: _Optional[int] = ..., reachability_problem: _Optional[str] = ...) -> None: ...

class FileEntry(_message.Message):
    __slots__ = ("name", "size", "sha256", "chunk_size", "chunk_list_sha256", "partial")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_LIST_SHA256_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    sha256: str
    chunk_size: int
    chunk_list_sha256: str
    partial: bool
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., chunk_size: _Optional[int] = ..., chunk_list_sha256: _Optional[str] = ..., partial: _Optional[bool] = ...) -> None: ...

class SendIndexRequest(_message.Message):
    __slots__ = ("mode", "add", "remove")
    MODE_FIELD_NUMBER: _ClassVar[int]
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    mode: IndexMode
    add: _containers.RepeatedCompositeFieldContainer[FileEntry]
    remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, mode: _Optional[_Union[IndexMode, str]] = ..., add: _Optional[_Iterable[_Union[FileEntry, _Mapping]]] = ..., remove: _Optional[_Iterable[str]] = ...) -> None: ...

class SendIndexResponse(_message.Message):
    __slots__ = ("file_count",)
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    file_count: int
    def __init__(self, file_count: _Optional[int] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("name_pattern", "sha256", "page_size", "page_token", "peer_name")
    NAME_PATTERN_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PEER_NAME_FIELD_NUMBER: _ClassVar[int]
    name_pattern: str
    sha256: str
    page_size: int
    page_token: str
    peer_name: str
    def __init__(self, name_pattern: _Optional[str] = ..., sha256: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., peer_name: _Optional[str] = ...) -> None: ...

class Source(_message.Message):
    __slots__ = ("peer_name", "address", "name", "partial")
    PEER_NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    peer_name: str
    address: str
    name: str
    partial: bool
    def __init__(self, peer_name: _Optional[str] = ..., address: _Optional[str] = ..., name: _Optional[str] = ..., partial: _Optional[bool] = ...) -> None: ...

class FileMatch(_message.Message):
    __slots__ = ("sha256", "name", "size", "chunk_size", "chunk_list_sha256", "sources", "matched_names")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_LIST_SHA256_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    MATCHED_NAMES_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    name: str
    size: int
    chunk_size: int
    chunk_list_sha256: str
    sources: _containers.RepeatedCompositeFieldContainer[Source]
    matched_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sha256: _Optional[str] = ..., name: _Optional[str] = ..., size: _Optional[int] = ..., chunk_size: _Optional[int] = ..., chunk_list_sha256: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[Source, _Mapping]]] = ..., matched_names: _Optional[_Iterable[str]] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("files", "next_page_token")
    FILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[FileMatch]
    next_page_token: str
    def __init__(self, files: _Optional[_Iterable[_Union[FileMatch, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListPeersRequest(_message.Message):
    __slots__ = ("name", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Peer(_message.Message):
    __slots__ = ("name", "address", "file_count", "reachability_problem")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REACHABILITY_PROBLEM_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    file_count: int
    reachability_problem: str
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., file_count: _Optional[int] = ..., reachability_problem: _Optional[str] = ...) -> None: ...

class ListPeersResponse(_message.Message):
    __slots__ = ("peers", "next_page_token")
    PEERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedCompositeFieldContainer[Peer]
    next_page_token: str
    def __init__(self, peers: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class IssuePeerTicketRequest(_message.Message):
    __slots__ = ("audience",)
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    audience: str
    def __init__(self, audience: _Optional[str] = ...) -> None: ...

class IssuePeerTicketResponse(_message.Message):
    __slots__ = ("ticket", "ttl_seconds")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ticket: str
    ttl_seconds: int
    def __init__(self, ticket: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class VerifyPeerTicketRequest(_message.Message):
    __slots__ = ("ticket",)
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ticket: str
    def __init__(self, ticket: _Optional[str] = ...) -> None: ...

class VerifyPeerTicketResponse(_message.Message):
    __slots__ = ("valid", "reason", "peer_name", "ttl_seconds")
    VALID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PEER_NAME_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    reason: str
    peer_name: str
    ttl_seconds: int
    def __init__(self, valid: _Optional[bool] = ..., reason: _Optional[str] = ..., peer_name: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class LogoutRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogoutResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("live_sessions", "serving_peers", "files", "contents", "accounts", "names_waiting_to_be_indexed", "uptime_seconds", "lease_seconds", "logins_refused_busy", "logins_refused_wrong_passwords")
    LIVE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    SERVING_PEERS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    CONTENTS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    NAMES_WAITING_TO_BE_INDEXED_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOGINS_REFUSED_BUSY_FIELD_NUMBER: _ClassVar[int]
    LOGINS_REFUSED_WRONG_PASSWORDS_FIELD_NUMBER: _ClassVar[int]
    live_sessions: int
    serving_peers: int
    files: int
    contents: int
    accounts: int
    names_waiting_to_be_indexed: int
    uptime_seconds: int
    lease_seconds: int
    logins_refused_busy: int
    logins_refused_wrong_passwords: int
    def __init__(self, live_sessions: _Optional[int] = ..., serving_peers: _Optional[int] = ..., files: _Optional[int] = ..., contents: _Optional[int] = ..., accounts: _Optional[int] = ..., names_waiting_to_be_indexed: _Optional[int] = ..., uptime_seconds: _Optional[int] = ..., lease_seconds: _Optional[int] = ..., logins_refused_busy: _Optional[int] = ..., logins_refused_wrong_passwords: _Optional[int] = ...) -> None: ...
