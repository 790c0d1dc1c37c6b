"""Wrapping gRPC method handlers, so that one interceptor covers all four call shapes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

Behavior = Callable[[Any, grpc.ServicerContext], Any]
# make(behavior, response_streaming) -> a new behavior with the same signature.
BehaviorWrapper = Callable[[Behavior, bool], Behavior]


def wrap_handler(handler: grpc.RpcMethodHandler | None, make: BehaviorWrapper) -> grpc.RpcMethodHandler | None:
    """Return handler with its behavior replaced by make(behavior, response_streaming)."""
    if handler is None:
        return None
    ser = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(make(handler.unary_unary, False), **ser)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(make(handler.unary_stream, True), **ser)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(make(handler.stream_unary, False), **ser)
    return grpc.stream_stream_rpc_method_handler(make(handler.stream_stream, True), **ser)


def abort_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as handler that fails every call with code and message."""

    def make(_behavior: Behavior, streaming: bool) -> Behavior:
        if streaming:

            def abort_stream(_request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                context.abort(code, message)
                yield  # pragma: no cover - abort raises

            return abort_stream

        def abort_unary(_request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(code, message)

        return abort_unary

    wrapped = wrap_handler(handler, make)
    assert wrapped is not None
    return wrapped
