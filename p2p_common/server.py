"""Server bootstrap shared by tracker and peer: health, reflection, logging, graceful stop."""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from p2p_common.errors import P2PError
from p2p_common.names import split_host_port, url_hint
from p2p_common.options import KEEPALIVE_SECONDS, server_options
from p2p_common.reflection import enable_reflection
from p2p_common.rpc_log import RpcLoggingInterceptor
from p2p_common.tls import ServerTls

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Service:
    """One gRPC service to host: its full name (for health and reflection) and how to add it."""

    name: str
    register: Callable[[grpc.Server], None]


@dataclass
class RunningServer:
    """A started server, its bound port and its health status."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    service_names: list[str] = field(default_factory=list)

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self.service_names]:
            self.health.set(name, status)

    def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, then let running calls finish for up to grace seconds."""
        self.set_serving(False)
        self.server.stop(grace).wait()


class BindError(P2PError):
    """The listen address could not be bound (told to the operator as one line)."""

    code = grpc.StatusCode.UNAVAILABLE


_BIND_HINTS = {
    errno.EADDRINUSE: "another process listens on that port: stop it, or give another port",
    errno.EADDRNOTAVAIL: "no interface of this host has that address",
    errno.EACCES: "ports below 1024 need privileges: give a higher one",
}


def _host_and_port(listen: str) -> tuple[str, int]:
    """listen as (host, port), an empty host as every interface; BindError unless it is host:port
    (port 0: any free port)."""
    parts = split_host_port(listen)
    if parts is None:
        example = "such as 0.0.0.0:50051 or [::]:50051"
        raise BindError(f"cannot listen on {listen}: give host:port with a port of 1-65535, {example}{url_hint(listen)}")
    return parts[0] or "0.0.0.0", parts[1]


def _why_not_bound(host: str, port: int) -> str | None:
    """What the system says about binding host:port, as gRPC's own error ("Failed to bind") does
    not; None when a plain socket binds it (the cause is gRPC's alone)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        return f"{host!r} is not a host name or address this host knows ({exc.strerror})"
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            hint = _BIND_HINTS.get(exc.errno or 0)
            return f"{exc.strerror}{f'; {hint}' if hint else ''}"
    return None


def start_server(
    listen: str,
    services: Sequence[Service],
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    max_workers: int = 32,
    tls: ServerTls | None = None,
    keepalive_seconds: float = KEEPALIVE_SECONDS,
) -> RunningServer:
    """Start a server on listen with services, health and reflection; health starts NOT_SERVING.

    With tls, the port speaks only TLS (p2p_common.tls); without, only plaintext.

    The caller marks it serving (set_serving(True)) once its own start-up is done.
    """
    host, wanted_port = _host_and_port(listen)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
        interceptors=[RpcLoggingInterceptor(), *interceptors],
        options=server_options(keepalive_seconds),
        maximum_concurrent_rpcs=max_workers * 4,
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in services:
        service.register(server)
    names = [s.name for s in services]
    enable_reflection([*names, health.SERVICE_NAME], server)
    try:
        port = server.add_secure_port(listen, tls.credentials()) if tls else server.add_insecure_port(listen)
    except RuntimeError as exc:
        raise BindError(f"cannot listen on {listen}: {_why_not_bound(host, wanted_port) or exc}") from exc
    if port == 0:
        raise BindError(f"cannot listen on {listen}: {_why_not_bound(host, wanted_port) or 'address in use or invalid'}")
    running = RunningServer(server, port, health_servicer, names)
    running.set_serving(False)
    server.start()
    return running


def wait_for_stop_signal() -> int:
    """Block until SIGTERM or SIGINT arrives; return the signal number.

    The main thread sleeps in a read of a pipe that every signal writes to (set_wakeup_fd). The
    kernel may hand a process's signal to any of its threads (to a gRPC one, often, right after
    a SIGCONT), and Python runs handlers in the main thread only once it wakes: asleep on a lock,
    it slept through SIGTERM (`serve` stopped and continued, then stopped by its service manager,
    never stopped)."""
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    previous = signal.set_wakeup_fd(wake_write)
    try:
        while not received:
            os.read(wake_read, 64)  # returns once any signal arrived, whichever thread took it
    finally:
        signal.set_wakeup_fd(previous)
        os.close(wake_read)
        os.close(wake_write)
    log.info("received %s, stopping", signal.Signals(received[0]).name)
    return received[0]
