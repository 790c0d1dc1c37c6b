"""A status code from the wire becomes the canonical error class, whatever modules are loaded."""

from __future__ import annotations

import grpc

import p2p_common.server  # noqa: F401 - defines BindError (UNAVAILABLE), which must not shadow Unavailable
import peer.downloader  # noqa: F401 - defines BadSource
from p2p_common.errors import P2PError, Unavailable
from peer.tracker_client import rpc_error


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str):
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_status_codes_map_to_the_canonical_classes():
    unreachable = rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"), "login")
    assert type(unreachable) is Unavailable and "server unreachable" in str(unreachable)
    unknown = rpc_error(FakeRpcError(grpc.StatusCode.UNKNOWN, "boom"), "query")
    assert type(unknown) is P2PError and str(unknown) == "query: boom [UNKNOWN]"
