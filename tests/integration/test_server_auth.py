"""The shared server bootstrap's bearer check: it runs in the call's worker, never in dispatch."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from p2p_common.auth import BearerAuthInterceptor, bearer_metadata, current_principal
from p2p_common.errors import Unauthenticated
from p2p_common.server import RunningServer, Service, start_server

SERVICE = "test.v1.Echo"


class SlowVerifier:
    """Verifies "good" tokens, but only once released (a tracker slow to answer, say)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, token: str) -> str:
        self.entered.set()
        if not self.release.wait(10):
            raise AssertionError("never released")
        if token != "good":
            raise Unauthenticated(f"token {token!r} is not good")
        return f"holder-of-{token}"


def _register(server: grpc.Server) -> None:
    def whoami(request: bytes, context: grpc.ServicerContext) -> bytes:
        return f"{current_principal()}:{request.decode()}".encode()

    def whoami_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for request in requests:
            yield f"{current_principal()}:{request.decode()}".encode()

    handlers = {
        "WhoAmI": grpc.unary_unary_rpc_method_handler(whoami),
        "WhoAmIStream": grpc.stream_stream_rpc_method_handler(whoami_stream),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


@pytest.fixture
def served() -> Iterator[tuple[RunningServer, SlowVerifier, grpc.Channel]]:
    verifier = SlowVerifier()
    running = start_server("127.0.0.1:0", [Service(SERVICE, _register)], [BearerAuthInterceptor(verifier, f"/{SERVICE}/")])
    running.set_serving(True)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield running, verifier, channel
    finally:
        channel.close()
        running.stop(0)


def test_a_slow_token_check_holds_up_only_its_own_call(served):
    _, verifier, channel = served
    whoami = channel.unary_unary(f"/{SERVICE}/WhoAmI")
    pending = whoami.future(b"hi", metadata=bearer_metadata("good"), timeout=20)
    assert verifier.entered.wait(10)
    # the check is still running: other calls (health here) are dispatched and answered meanwhile
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert not pending.done()
    verifier.release.set()
    assert pending.result() == b"holder-of-good:hi"


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [((), "missing 'authorization"), (bearer_metadata("bad"), "'bad' is not good"), ((("authorization", "Basic x"),), "Bearer")],
)
def test_bad_credentials_are_unauthenticated_on_both_call_shapes(served, metadata, fragment):
    _, verifier, channel = served
    verifier.release.set()
    with pytest.raises(grpc.RpcError) as unary:
        channel.unary_unary(f"/{SERVICE}/WhoAmI")(b"hi", metadata=metadata, timeout=10)
    stream = channel.stream_stream(f"/{SERVICE}/WhoAmIStream")(iter([b"a", b"b"]), metadata=metadata, timeout=10)
    with pytest.raises(grpc.RpcError) as streaming:
        list(stream)
    for error in (unary.value, streaming.value):
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED and fragment in error.details()


def test_each_call_sees_its_own_principal(served):
    _, verifier, channel = served
    verifier.release.set()
    stream = channel.stream_stream(f"/{SERVICE}/WhoAmIStream")(iter([b"a", b"b"]), metadata=bearer_metadata("good"), timeout=10)
    assert list(stream) == [b"holder-of-good:a", b"holder-of-good:b"]
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)  # unprotected
    assert health.status == health_pb2.HealthCheckResponse.SERVING
