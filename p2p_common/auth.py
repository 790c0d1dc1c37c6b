"""Bearer-token metadata: one interceptor checks it, handlers read who the caller is."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from p2p_common.errors import P2PError, Unauthenticated
from p2p_common.interceptors import Behavior, HandlerCache

AUTH_HEADER = "authorization"
_SCHEME = "bearer "

_principal: contextvars.ContextVar[Any] = contextvars.ContextVar("p2p_principal", default=None)


# The credentials are missing, malformed, unknown or expired; the message says which.
AuthError = Unauthenticated


Metadata = tuple[tuple[str, str], ...]  # a call's metadata, as gRPC's client stubs take it


def bearer_metadata(token: str) -> Metadata:
    """Call metadata that presents token."""
    return ((AUTH_HEADER, f"Bearer {token}"),)


def token_from_metadata(metadata: Any) -> str:
    """The bearer token in metadata, or AuthError saying what is wrong with it."""
    values = [v for k, v in (metadata or ()) if k == AUTH_HEADER]
    if not values:
        raise AuthError("missing 'authorization: Bearer <token>' metadata")
    value = values[0]
    if not isinstance(value, str) or not value.lower().startswith(_SCHEME):
        raise AuthError("the 'authorization' metadata must be 'Bearer <token>'")
    token = value[len(_SCHEME) :].strip()
    if not token:
        raise AuthError("the bearer token is empty")
    return token


def current_principal() -> Any:
    """Whoever the interceptor authenticated for the RPC running in this thread."""
    return _principal.get()


class BearerAuthInterceptor(grpc.ServerInterceptor):
    """Checks the bearer token of every call to a protected method before the handler runs.

    verify(token) returns the principal (made available through current_principal()) or
    raises a P2PError (AuthError for bad credentials). Methods outside protected_prefix (health,
    reflection) and those in public_methods pass unchecked. The check runs in the call's worker
    thread, not in the server's dispatch thread (see p2p_common.interceptors): a slow verifier
    holds up only the call it checks.
    """

    def __init__(self, verify: Callable[[str], Any], protected_prefix: str, public_methods: frozenset[str] = frozenset()):
        self._prefix = protected_prefix
        self._public = public_methods
        self._handlers = HandlerCache(lambda _method, behavior, streaming: _authenticated(behavior, streaming, verify))

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if not method.startswith(self._prefix) or method in self._public:
            return handler
        return self._handlers.wrapped(method, handler)


def _principal_of(verify: Callable[[str], Any], context: grpc.ServicerContext) -> Any:
    """The verified caller of this call, or the call aborted with the reason."""
    try:
        return verify(token_from_metadata(context.invocation_metadata()))
    except P2PError as exc:  # usually Unauthenticated; Unavailable when a verifier is unreachable
        context.abort(exc.code, str(exc))


def _authenticated(behavior: Behavior, streaming: bool, verify: Callable[[str], Any]) -> Behavior:
    # Set, never reset: a streaming handler's generator may be closed from another context,
    # and every call (the logging interceptor first) sets the variable anew anyway.
    if streaming:

        def run_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            _principal.set(_principal_of(verify, context))
            yield from behavior(request, context)

        return run_stream

    def run_unary(request: Any, context: grpc.ServicerContext) -> Any:
        _principal.set(_principal_of(verify, context))
        return behavior(request, context)

    return run_unary


def clear_principal() -> None:
    """Forget the previous call's principal (pool threads are reused across calls)."""
    _principal.set(None)
