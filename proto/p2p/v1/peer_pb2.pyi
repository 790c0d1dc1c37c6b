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
    __slots__ = ("index", "data")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    index: int
    data: bytes
    def __init__(self, index: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

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
    __slots__ = ("have_chunks",)
    HAVE_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    have_chunks: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, have_chunks: _Optional[_Iterable[int]] = ...) -> None: ...

class UploadComplete(_message.Message):
    __slots__ = ("name", "sha256", "bytes_received")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    name: str
    sha256: str
    bytes_received: int
    def __init__(self, name: _Optional[str] = ..., sha256: _Optional[str] = ..., bytes_received: _Optional[int] = ...) -> None: ...

class UploadResponse(_message.Message):
    __slots__ = ("accepted", "complete")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    accepted: UploadAccepted
    complete: UploadComplete
    def __init__(self, accepted: _Optional[_Union[UploadAccepted, _Mapping]] = ..., complete: _Optional[_Union[UploadComplete, _Mapping]] = ...) -> None: ...
