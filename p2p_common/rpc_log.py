"""One log line per RPC: method, caller, status and duration; never metadata or payloads."""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from p2p_common.auth import clear_principal, current_principal
from p2p_common.interceptors import Behavior, HandlerCache

log = logging.getLogger("p2p.rpc")


class RpcLoggingInterceptor(grpc.ServerInterceptor):
    """Logs every call when it ends; a handler that crashed is logged with its traceback."""

    def __init__(self) -> None:
        self._handlers = HandlerCache(_logged)

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        return self._handlers.wrapped(handler_call_details.method, continuation(handler_call_details))


def _finish(method: str, context: grpc.ServicerContext, started: float, error: BaseException | None) -> None:
    code = context.code() if hasattr(context, "code") else None
    if error is not None and code is None and not context.is_active():
        code = grpc.StatusCode.CANCELLED  # the caller went away (a finished download cancels its streams)
    if error is not None and code is None and not isinstance(error, GeneratorExit):
        log.error("%s crashed", method, exc_info=error)
        code = grpc.StatusCode.UNKNOWN
    if isinstance(error, GeneratorExit) and code is None:
        code = grpc.StatusCode.CANCELLED
    status = code.name if isinstance(code, grpc.StatusCode) else "OK"
    who = current_principal()
    name = getattr(who, "account", None) or getattr(who, "name", None) or who  # a tracker Session, or a peer's name
    caller = f"{name}@{context.peer()}" if who is not None else context.peer()
    level = logging.INFO if status in ("OK", "CANCELLED") else logging.WARNING
    log.log(level, "rpc %s caller=%s status=%s duration_ms=%.1f", method, caller, status, (time.perf_counter() - started) * 1000)


def _logged(method: str, behavior: Behavior, streaming: bool) -> Behavior:
    if streaming:

        def run_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            clear_principal()
            started, error = time.perf_counter(), None
            try:
                yield from behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                _finish(method, context, started, error)

        return run_stream

    def run_unary(request: Any, context: grpc.ServicerContext) -> Any:
        clear_principal()
        started, error = time.perf_counter(), None
        try:
            return behavior(request, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _finish(method, context, started, error)

    return run_unary


LOG_LEVELS = ("debug", "info", "warning", "error")


def add_log_level_flag(parser: argparse.ArgumentParser, default: str) -> None:
    """--log-level, its default from P2P_LOG_LEVEL; a bad value there is a usage error too
    (argparse checks choices only on the command line, so the type checks it)."""

    def level(value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
        return value.lower()

    parser.add_argument(
        "--log-level",
        type=level,
        default=os.environ.get("P2P_LOG_LEVEL", default),
        metavar="{" + ",".join(LOG_LEVELS) + "}",
        help="log level [P2P_LOG_LEVEL]",
    )


def setup_logging(level: str) -> None:
    """Configure the root logger once for a server process."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
