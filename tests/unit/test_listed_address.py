"""Where a serving session is listed: the caller's host for ':port', and no address that no other
host could dial."""

from __future__ import annotations

import pytest

from p2p_common.errors import InvalidArgument
from tracker.directory import listed_address
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


@pytest.mark.parametrize(
    ("address", "caller_ip", "listed"),
    [
        ("", "10.0.0.7", ""),  # a client-only session
        (":50052", "10.0.0.7", "10.0.0.7:50052"),
        (":50052", "[2001:db8::7]", "[2001:db8::7]:50052"),
        ("peer.example:7000", "10.0.0.7", "peer.example:7000"),
        ("127.0.0.1:50052", "127.0.0.1", "127.0.0.1:50052"),  # all on one host
        ("localhost:50052", "", "localhost:50052"),  # the caller's host unknown: taken as given
    ],
)
def test_listed_address(address, caller_ip, listed):
    assert listed_address(address, caller_ip) == listed


@pytest.mark.parametrize(
    ("address", "caller_ip", "fragment"),
    [
        ("127.0.0.1:50052", "10.0.0.7", "loopback address, which only 10.0.0.7 itself can dial"),
        ("localhost:50052", "10.0.0.7", "or ':50052' to be listed as 10.0.0.7:50052"),
        ("[::1]:50052", "10.0.0.7", "loopback"),
        ("127.0.0.2:50052", "[2001:db8::7]", "loopback"),
        (":50052", "", "needs the host this login came from"),
        ("host:0", "10.0.0.7", "host:port"),
        (":", "10.0.0.7", "host:port"),
    ],
)
def test_addresses_no_other_host_could_dial_are_refused(address, caller_ip, fragment):
    with pytest.raises(InvalidArgument) as info:
        listed_address(address, caller_ip)
    assert fragment in str(info.value)
