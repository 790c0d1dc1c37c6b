"""Expected errors and their gRPC status codes, in one table for servers and one reader for clients."""

from __future__ import annotations

import grpc


class P2PError(Exception):
    """An expected failure caused by the request or the world, told to the caller as one line."""

    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(P2PError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class Unauthenticated(P2PError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(P2PError):
    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(P2PError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(P2PError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(P2PError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(P2PError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Busy(ResourceExhausted):
    """Serving as many calls of this kind as it allows right now: ask again in retry_after
    seconds. The status carries a RETRY_AFTER_KEY trailer, which tells it from a
    ResourceExhausted that asking again will not mend (a file too large, a full disk)."""

    def __init__(self, message: str, retry_after: float = 1.0, place: int = 0):
        super().__init__(message)
        self.retry_after = retry_after
        self.place = place  # in line for what is busy (1: next), when the server says (else 0)


RETRY_AFTER_KEY = "retry-after-ms"  # trailing metadata of a Busy refusal: when to ask again
RETRY_AFTER_RANGE = (0.1, 60.0)  # seconds a client takes from a trailer: a peer cannot make it spin, nor stall it
PLACE_KEY = "place-in-line"  # trailing metadata of a Busy refusal, when the server keeps a line: 1 is next


class DataLoss(P2PError):
    code = grpc.StatusCode.DATA_LOSS


class Unavailable(P2PError):
    code = grpc.StatusCode.UNAVAILABLE


class Internal(P2PError):
    """Something broke on the server's side that asking again will not mend (a disk's I/O error)."""

    code = grpc.StatusCode.INTERNAL


# The error a status code stands for, on the client side: this table, not P2PError's subclasses
# (modules add their own, like BindError, whose code must not shadow the canonical class)
BY_CODE: dict[grpc.StatusCode, type[P2PError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        Unauthenticated,
        PermissionDenied,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        DataLoss,
        Unavailable,
        Internal,
    )
}


def error_text(exc: BaseException) -> str:
    """An error as a command's one line: an OSError as 'No such file or directory: /x', not its repr."""
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}"
    return str(exc)


def abort_with(context: grpc.ServicerContext, error: P2PError) -> None:
    """End the call with error's status code and message."""
    if isinstance(error, Busy):
        place = ((PLACE_KEY, str(error.place)),) if error.place else ()
        context.set_trailing_metadata(((RETRY_AFTER_KEY, str(round(error.retry_after * 1000))), *place))
    context.abort(error.code, str(error))


def as_p2p_error(error: grpc.RpcError, what: str) -> P2PError:
    """The P2PError a failed call stands for, by its status code, with a readable message; a
    Busy (told by its trailer) says when to ask again, within RETRY_AFTER_RANGE."""
    message = describe_rpc_error(error, what)
    cls = BY_CODE.get(error.code(), P2PError)
    if cls is ResourceExhausted:
        trailers = dict(error.trailing_metadata() or ())
        if RETRY_AFTER_KEY in trailers:
            low, high = RETRY_AFTER_RANGE
            seconds = min(max(_number(trailers[RETRY_AFTER_KEY], 1000) / 1000, low), high)
            place = _number(trailers.get(PLACE_KEY, 0), 0)
            return Busy(message, seconds, max(place, 0))
    return cls(message)


def _number(value: str | bytes | int, otherwise: int) -> int:
    """A trailer's whole number, or otherwise when it is none."""
    try:
        return int(value)
    except ValueError:
        return otherwise


def describe_rpc_error(error: grpc.RpcError, what: str) -> str:
    """One readable line for a failed call: what was attempted, and what the server said."""
    code = error.code() if hasattr(error, "code") else None
    detail = error.details() if hasattr(error, "details") else str(error)
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"{what}: server unreachable ({detail}){_tls_hint(detail or '')}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"{what}: timed out"
    name = code.name if code is not None else "ERROR"
    return f"{what}: {detail} [{name}]"


def _tls_hint(detail: str) -> str:
    """What a failed connection most likely means, when TLS is the cause."""
    if "CERTIFICATE_VERIFY_FAILED" in detail:
        return "; its TLS certificate is not signed by a CA that --tls-ca names"
    if "Hostname Verification" in detail:
        return "; its TLS certificate was issued for another name or address"
    if "WRONG_VERSION_NUMBER" in detail or "Tls handshake failed" in detail:
        return "; TLS failed: does this server serve TLS?"
    if "Socket closed" in detail:
        return "; if it serves TLS, give --tls-ca"
    return ""
