"""Wrapping gRPC method handlers, so that one interceptor covers all four call shapes.

A sync gRPC server runs every interceptor in its one dispatch thread, before it hands the call
to a worker: whatever an interceptor does per call there (a database lookup, an RPC to a
verifier) holds up the dispatch of every other call. So interceptors wrap each method's handler
once (HandlerCache) and do their per-call work in the wrapped behavior, in the worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Behavior = Callable[[Any, grpc.ServicerContext], Any]
# make(method, behavior, response_streaming) -> a new behavior with the same signature.
BehaviorWrapper = Callable[[str, Behavior, bool], Behavior]


def wrap_handler(handler: grpc.RpcMethodHandler, wrap: Callable[[Behavior, bool], Behavior]) -> grpc.RpcMethodHandler:
    """Return handler with its behavior replaced by wrap(behavior, response_streaming)."""
    ser = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False), **ser)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, True), **ser)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, False), **ser)
    return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, True), **ser)


class HandlerCache:
    """Each method's handler wrapped once by make, instead of a new handler built for every call."""

    def __init__(self, make: BehaviorWrapper):
        self._make = make
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def wrapped(self, method: str, handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler | None:
        if handler is None:
            return None
        entry = self._wrapped.get(method)
        if entry is None or entry[0] is not handler:  # a service hands back the same handler each call
            entry = (handler, wrap_handler(handler, lambda behavior, streaming: self._make(method, behavior, streaming)))
            self._wrapped[method] = entry
        return entry[1]
