from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetManifestRequest(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

class GetManifestResponse(_message.Message):
    __slots__ = ("sha256", "size", "chunk_size", "chunk_digests")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size: int
    chunk_size: int
    chunk_digests: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, sha256: _Optional[str] = ..., size: _Optional[int] = ..., chunk_size: _Optional[int] = ..., chunk_digests: _Optional[_Iterable[bytes]] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("sha256", "chunk_indexes")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEXES_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    chunk_indexes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, sha256: _Optional[str] = ..., chunk_indexes: _Optional[_Iterable[int]] = ...) -> None: ...

class DownloadResponse(_message.Message):
    __slots__ = ("index", "data", "not_held", "held_chunks")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    NOT_HELD_FIELD_NUMBER: _ClassVar[int]
    HELD_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    index: int
    data: bytes
    not_held: bool
    held_chunks: bytes
    def __init__(self, index: _Optional[int] = ..., data: _Optional[bytes] = ..., not_held: _Optional[bool] = ..., held_chunks: _Optional[bytes] = ...) -> None: ...

class UploadOffer(_message.Message):
    __slots__ = ("name", "size", "sha256", "chunk_size", "chunk_digests")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    sha256: str
    chunk_size: int
    chunk_digests: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., chunk_size: _Optional[int] = ..., chunk_digests: _Optional[_Iterable[bytes]] = ...) -> None: ...

class UploadChunk(_message.Message):
    __slots__ = ("index", "data")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    index: int
    data: bytes
    def __init__(self, index: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadRequest(_message.Message):
    __slots__ = ("offer", "chunk")
    OFFER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    offer: UploadOffer
    chunk: UploadChunk
    def __init__(self, offer: _Optional[_Union[UploadOffer, _Mapping]] = ..., chunk: _Optional[_Union[UploadChunk, _Mapping]] = ...) -> None: ...

class UploadAccepted(_message.Message):
    __slots__ = ("have_chunks", "takes_more_files")
    HAVE_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    TAKES_MORE_FILES_FIELD_NUMBER: _ClassVar[int]
    have_chunks: _containers.RepeatedScalarFieldContainer[int]
    takes_more_files: bool
    def __init__(self, have_chunks: _Optional[_Iterable[int]] = ..., takes_more_files: _Optional[bool] = ...) -> None: ...

class UploadComplete(_message.Message):
    __slots__ = ("name", "sha256", "bytes_received", "already_there")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_THERE_FIELD_NUMBER: _ClassVar[int]
    name: str
    sha256: str
    bytes_received: int
    already_there: bool
    def __init__(self, name: _Optional[str] = ..., sha256: _Optional[str] = ..., bytes_received: _Optional[int] = ..., already_there: _Optional[bool] = ...) -> None: ...

class UploadResponse(_message.Message):
    __slots__ = ("accepted", "complete")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    accepted: UploadAccepted
    complete: UploadComplete
    def __init__(self, accepted: _Optional[_Union[UploadAccepted, _Mapping]] = ..., complete: _Optional[_Union[UploadComplete, _Mapping]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("files", "bytes", "indexed", "transfers_active", "transfers_max", "chunks_served", "bytes_served", "uploads_received", "max_serve_rate", "uploads_allowed", "uptime_seconds", "partial_files", "left_out", "transfers_waiting")
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_MAX_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_SERVED_FIELD_NUMBER: _ClassVar[int]
    BYTES_SERVED_FIELD_NUMBER: _ClassVar[int]
    UPLOADS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    MAX_SERVE_RATE_FIELD_NUMBER: _ClassVar[int]
    UPLOADS_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FILES_FIELD_NUMBER: _ClassVar[int]
    LEFT_OUT_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_WAITING_FIELD_NUMBER: _ClassVar[int]
    files: int
    bytes: int
    indexed: bool
    transfers_active: int
    transfers_max: int
    chunks_served: int
    bytes_served: int
    uploads_received: int
    max_serve_rate: int
    uploads_allowed: bool
    uptime_seconds: int
    partial_files: int
    left_out: int
    transfers_waiting: int
    def __init__(self, files: _Optional[int] = ..., bytes: _Optional[int] = ..., indexed: _Optional[bool] = ..., transfers_active: _Optional[int] = ..., transfers_max: _Optional[int] = ..., chunks_served: _Optional[int] = ..., bytes_served: _Optional[int] = ..., uploads_received: _Optional[int] = ..., max_serve_rate: _Optional[int] = ..., uploads_allowed: _Optional[bool] = ..., uptime_seconds: _Optional[int] = ..., partial_files: _Optional[int] = ..., left_out: _Optional[int] = ..., transfers_waiting: _Optional[int] = ...) -> None: ...
