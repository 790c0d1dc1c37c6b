"""A status code from the wire becomes the canonical error class, whatever modules are loaded."""

from __future__ import annotations

import grpc
import pytest

import p2p_common.server  # noqa: F401 - defines BindError (UNAVAILABLE), which must not shadow Unavailable
import peer.downloader  # noqa: F401 - defines BadSource
from p2p_common.errors import Busy, P2PError, ResourceExhausted, Unavailable, as_p2p_error


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str, trailers: tuple[tuple[str, str], ...] = ()):
        self._code, self._details, self._trailers = code, details, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailers


def test_status_codes_map_to_the_canonical_classes():
    unreachable = as_p2p_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"), "login")
    assert type(unreachable) is Unavailable and "server unreachable" in str(unreachable)
    unknown = as_p2p_error(FakeRpcError(grpc.StatusCode.UNKNOWN, "boom"), "query")
    assert type(unknown) is P2PError and str(unknown) == "query: boom [UNKNOWN]"


@pytest.mark.parametrize(("told", "seconds"), [("2500", 2.5), ("0", 0.1), ("86400000", 60.0), ("soon", 1.0), ("", 1.0)])
def test_a_busy_refusal_says_when_to_ask_again_within_bounds(told: str, seconds: float):
    """A peer cannot make its callers spin (0) or stall (a day), nor break them with junk."""
    error = as_p2p_error(FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", (("retry-after-ms", told),)), "chunk stream")
    assert isinstance(error, Busy) and error.retry_after == seconds


@pytest.mark.parametrize(("told", "place"), [("3", 3), ("0", 0), ("-2", 0), ("next", 0)])
def test_a_busy_refusal_may_say_the_callers_place_in_line(told: str, place: int):
    trailers = (("retry-after-ms", "1000"), ("place-in-line", told))
    error = as_p2p_error(FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", trailers), "chunk stream")
    assert isinstance(error, Busy) and error.place == place


def test_resource_exhausted_without_the_trailer_is_not_busy():
    """A file too large or a full disk: asking again will not mend it."""
    error = as_p2p_error(FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "too large"), "upload")
    assert type(error) is ResourceExhausted
