"""Container health probe: `python -m p2p_common.healthcheck ADDR [SERVICE]`; exit 0 healthy, 1 not.

Calls the standard grpc.health.v1.Health/Check, so it works against any of our servers.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str = "", timeout: float = 3.0) -> tuple[bool, str]:
    """(healthy, what the server said) for service at address."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return False, f"{exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="healthcheck", description="gRPC health probe (exit 0 when SERVING)")
    parser.add_argument("address", help="host:port of the server")
    parser.add_argument("service", nargs="?", default="", help="service name, e.g. p2p.v1.TrackerService; empty: the server")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    healthy, detail = check(args.address, args.service, args.timeout)
    print(f"{args.address} {args.service or '(server)'}: {detail}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
