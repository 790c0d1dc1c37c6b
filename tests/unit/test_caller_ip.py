"""The caller's host as the tracker lists it for an address given as ':port'."""

from __future__ import annotations

import pytest

from tracker.service import _ip_of


@pytest.mark.parametrize(
    ("peer", "ip"),
    [
        ("ipv4:10.0.0.7:50312", "10.0.0.7"),
        ("ipv6:[::1]:5", "[::1]"),
        ("ipv6:[2001:db8::7]:443", "[2001:db8::7]"),
        ("ipv6:[::ffff:10.0.0.7]:5", "10.0.0.7"),  # an IPv4 caller of a server listening on [::]
        ("ipv6:%5B::1%5D:5", "[::1]"),  # percent-encoded, as some gRPC versions print it
        ("unix:/tmp/tracker.sock", ""),
        ("ipv4:not-an-ip:5", ""),
        ("", ""),
    ],
)
def test_ip_of_a_grpc_peer(peer, ip):
    assert _ip_of(peer) == ip
