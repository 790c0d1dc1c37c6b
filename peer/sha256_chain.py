"""SHA-256 that stops at chunk boundaries and resumes from there: chunk digests that chain into
the file's sha256, so one pass over the bytes checks every chunk and the whole file.

A chunk's digest is SHA-256's chaining value after the chunk (its eight state words, big-endian)
and the last chunk's digest is the file's sha256 itself. A chunk is checked on its own, starting
from the previous chunk's digest; checking every chunk *is* computing the file's sha256, where
separate chunk hashes cost a second pass (0.7 s of CPU per GiB here, a third of a download's).
hashlib cannot resume from a state, so this calls OpenSSL's SHA256_* functions, from the very
libcrypto hashlib uses, through ctypes, which releases the GIL around each call.

Trust: a wrong chunk that passes would be a second preimage for SHA-256's compression chain, and
a made-up chunk list is caught before any chunk moves: it must hash to the chunk_list_sha256 the
tracker vouches for, and end in the file's sha256.
"""

from __future__ import annotations

import ctypes
import hashlib
import struct
from collections.abc import Iterator
from typing import Any, NamedTuple

from p2p_common.errors import FailedPrecondition

DIGEST_BYTES = 32
BLOCK_BYTES = 64  # chaining values exist only between 64-byte blocks: chunk sizes are multiples
_WORDS = struct.Struct(">8I")


class _Sha256Ctx(ctypes.Structure):
    """OpenSSL's SHA256_CTX (public in <openssl/sha.h>)."""

    _fields_ = [
        ("h", ctypes.c_uint32 * 8),
        ("Nl", ctypes.c_uint32),
        ("Nh", ctypes.c_uint32),
        ("data", ctypes.c_uint32 * 16),
        ("num", ctypes.c_uint),
        ("md_len", ctypes.c_uint),
    ]


class _PyBuffer(ctypes.Structure):
    """CPython's Py_buffer: the address of any bytes-like object without copying it."""

    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


class _Libcrypto(NamedTuple):
    """libcrypto loaded twice: calls through the CDLL release the GIL (for hashing a chunk), calls
    through the PyDLL keep it (for the tiny init and final steps, where a GIL hand-off costs more
    than the call)."""

    releasing: Any
    holding: Any


_loaded: _Libcrypto | None = None


def _libcrypto() -> _Libcrypto:
    """libcrypto, loaded and checked on first use: a peer without it can still search."""
    global _loaded
    if _loaded is None:
        lib = _load_libcrypto()
        if not _agrees_with_hashlib(lib):
            raise FailedPrecondition("OpenSSL's SHA256_CTX is not laid out as expected: chunk digests cannot be computed")
        _loaded = lib
    return _loaded


def check_available() -> None:
    """FailedPrecondition, in one line, unless chained digests can be computed here."""
    _libcrypto()


def _load_libcrypto() -> _Libcrypto:
    """OpenSSL's libcrypto as hashlib loaded it (its symbols resolve through _hashlib), else any."""
    for name in _libcrypto_candidates():
        try:
            releasing, holding = ctypes.CDLL(name), ctypes.PyDLL(name)
            releasing.SHA256_Update.argtypes = [ctypes.POINTER(_Sha256Ctx), ctypes.c_void_p, ctypes.c_size_t]
            holding.SHA256_Update.argtypes = [ctypes.POINTER(_Sha256Ctx), ctypes.c_void_p, ctypes.c_size_t]
            holding.SHA256_Init.argtypes = [ctypes.POINTER(_Sha256Ctx)]
            holding.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Sha256Ctx)]
            return _Libcrypto(releasing, holding)
        except (OSError, AttributeError):
            continue
    raise FailedPrecondition(
        "chunk digests need OpenSSL's libcrypto with SHA256_Init/Update/Final (the library hashlib uses); none was found"
    )


def _libcrypto_candidates() -> Iterator[str]:
    try:
        import _hashlib

        yield _hashlib.__file__
    except (ImportError, AttributeError):
        pass
    import ctypes.util  # only when hashlib's own library failed: find_library runs ldconfig

    found = ctypes.util.find_library("crypto")
    if found:
        yield found


GIL_RELEASE_BYTES = 4096  # below this, hashing takes less time than handing the GIL over
_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]


class Sha256Chain:
    """A SHA-256 computation that can be started from a chaining value at a block boundary."""

    def __init__(self, state: bytes | None = None, offset: int = 0, *, libcrypto: _Libcrypto | None = None):
        self._lib = libcrypto or _libcrypto()
        self._ctx = _Sha256Ctx()
        self._lib.holding.SHA256_Init(ctypes.byref(self._ctx))
        if state is not None:
            if len(state) != DIGEST_BYTES or offset % BLOCK_BYTES:
                raise ValueError("a chaining value is 32 bytes, at an offset that is a multiple of 64")
            self._ctx.h[:] = _WORDS.unpack(state)
            bits = offset * 8
            self._ctx.Nl, self._ctx.Nh = bits & 0xFFFFFFFF, bits >> 32

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = _PyBuffer()
        _get_buffer(data, ctypes.byref(view), 0)  # PyBUF_SIMPLE: contiguous bytes, or TypeError
        try:
            lib = self._lib.releasing if view.len >= GIL_RELEASE_BYTES else self._lib.holding
            update = lib.SHA256_Update
            update(ctypes.byref(self._ctx), view.buf, view.len)
        finally:
            _release_buffer(ctypes.byref(view))

    def state(self) -> bytes:
        """The chaining value so far; only defined after a multiple of 64 bytes."""
        if self._ctx.num:
            raise ValueError("a chaining value exists only at a 64-byte boundary")
        return _WORDS.pack(*self._ctx.h)

    def digest(self) -> bytes:
        """The final sha256 (pads the message: update no more afterwards)."""
        out = ctypes.create_string_buffer(DIGEST_BYTES)
        self._lib.holding.SHA256_Final(out, ctypes.byref(self._ctx))
        return out.raw


def chunk_digest(previous: bytes | None, offset: int, data: bytes | bytearray | memoryview, last: bool) -> bytes:
    """The digest of a chunk at offset, resumed from the previous chunk's digest (None for the first).

    A single-chunk file's digest is simply its sha256, computed by hashlib without the detour.
    """
    if previous is None and last:
        return hashlib.sha256(data).digest()
    chain = Sha256Chain(previous, offset)
    chain.update(data)
    return chain.digest() if last else chain.state()


def _agrees_with_hashlib(lib: _Libcrypto) -> bool:
    """A check that this libcrypto's SHA256_CTX is laid out as _Sha256Ctx says."""
    data = bytes(range(256)) * 2
    first = Sha256Chain(libcrypto=lib)
    first.update(data[:128])
    second = Sha256Chain(first.state(), 128, libcrypto=lib)
    second.update(data[128:])
    return second.digest() == hashlib.sha256(data).digest()
