"""Container health probe: `python -m p2p_common.healthcheck [--address A] [--service S]`.

Calls the standard grpc.health.v1.Health/Check and exits 0 when SERVING, 1 otherwise. Without
--address it probes $P2P_LISTEN (at 127.0.0.1 for a wildcard host such as 0.0.0.0), so one
HEALTHCHECK line stays right whatever address the container is configured to serve on. A server
that serves TLS is probed over TLS when $P2P_TLS_CA names the CA that signed it
($P2P_TLS_SERVER_NAME: the name its certificate holds, when that is not the address dialled).
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from p2p_common.errors import P2PError
from p2p_common.names import split_host_port
from p2p_common.tls import ClientTls, open_channel


def check(address: str, service: str = "", timeout: float = 3.0, tls: ClientTls | None = None) -> tuple[bool, str]:
    """(healthy, what the server said) for service at address."""
    with open_channel(address, tls) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return False, f"{exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, status


def local_address(listen: str) -> str:
    """Where this host reaches a server listening on listen (host:port): loopback for a wildcard
    host (0.0.0.0, [::], none), else that very address (a server bound to 10.0.0.5 or [::1]
    alone does not answer on 127.0.0.1)."""
    parts = split_host_port(listen)
    if parts is None or parts[0] in ("", "0.0.0.0", "::"):
        return f"127.0.0.1:{listen.rsplit(':', 1)[-1]}"
    return listen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="healthcheck", description="gRPC health probe (exit 0 when SERVING)")
    parser.add_argument("--address", help="host:port of the server (default: $P2P_LISTEN, 127.0.0.1 for a wildcard host)")
    parser.add_argument("--service", default="", help="service name, e.g. p2p.v1.TrackerService; empty: the whole server")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    parser.add_argument("--tls-ca", default=os.environ.get("P2P_TLS_CA", ""), help="PEM CA bundle: probe over TLS [P2P_TLS_CA]")
    parser.add_argument(
        "--tls-server-name",
        default=os.environ.get("P2P_TLS_SERVER_NAME", ""),
        help="name in the server's certificate, if not the dialled host [P2P_TLS_SERVER_NAME]",
    )
    args = parser.parse_args(argv)
    if not args.address and not os.environ.get("P2P_LISTEN"):
        parser.error("give --address or set P2P_LISTEN")
    address = args.address or local_address(os.environ["P2P_LISTEN"])
    try:
        tls = ClientTls.load(args.tls_ca, args.tls_server_name)
    except P2PError as exc:
        parser.error(str(exc))
    healthy, detail = check(address, args.service, args.timeout, tls)
    print(f"{address} {args.service or '(server)'}: {detail}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
