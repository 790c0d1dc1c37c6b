"""Operators' view: the real grpcurl binary against a live tracker (reflection, auth, health)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from p2p.v1 import tracker_pb2 as tpb
from tests.helpers import file_entry

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def address(tracker) -> str:
    return f"127.0.0.1:{tracker.port}"


def test_list_shows_every_service(address):
    out = grpcurl(address, "list")
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) >= {
        "p2p.v1.TrackerService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }


def test_reflection_v1_is_served_as_well_as_v1alpha(address):
    """Newer clients ask for grpc.reflection.v1 first. grpcurl 1.8 itself speaks v1alpha: through
    it, v1 is described and then called over the wire like any other service."""
    described = grpcurl(address, "describe", "grpc.reflection.v1.ServerReflection")
    assert described.returncode == 0, described.stderr
    assert "rpc ServerReflectionInfo ( stream .grpc.reflection.v1.ServerReflectionRequest )" in described.stdout
    listed = grpcurl("-d", '{"list_services": ""}', address, "grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
    assert listed.returncode == 0, listed.stderr
    services = {s["name"] for s in json.loads(listed.stdout)["list_services_response"]["service"]}
    assert {"p2p.v1.TrackerService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} <= services
    symbol = '{"file_containing_symbol": "p2p.v1.TrackerService"}'
    found = grpcurl("-d", symbol, address, "grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["file_descriptor_response"]["file_descriptor_proto"]  # base64 FileDescriptorProtos


def test_describe_shows_documented_rpcs(address):
    out = grpcurl(address, "describe", "p2p.v1.TrackerService")
    assert out.returncode == 0, out.stderr
    for rpc in ("Login", "Heartbeat", "SendIndex", "Query", "Logout", "GetStats"):
        assert f"rpc {rpc}" in out.stdout
    out = grpcurl(address, "describe", "p2p.v1.QueryRequest")
    assert "name_pattern" in out.stdout and "page_token" in out.stdout


def test_login_and_query_with_bearer_header(address, client_factory):
    peer = client_factory()
    peer.login("alice", address="127.0.0.1:7001")
    peer.send_index(tpb.SendIndexRequest(mode=tpb.INDEX_MODE_REPLACE, add=[file_entry("holiday.jpg", b"jpg")]))

    login = grpcurl("-d", json.dumps({"name": "ops", "password": "pw"}), address, "p2p.v1.TrackerService/Login")
    assert login.returncode == 0, login.stderr
    reply = json.loads(login.stdout)
    token = reply.get("sessionToken") or reply["session_token"]
    query = grpcurl(
        "-H", f"authorization: Bearer {token}", "-d", '{"name_pattern": "holiday"}', address, "p2p.v1.TrackerService/Query"
    )
    assert query.returncode == 0, query.stderr
    files = json.loads(query.stdout)["files"]
    assert (
        files[0]["name"] == "holiday.jpg"
        and files[0]["sources"][0].get("peerName", files[0]["sources"][0].get("peer_name")) == "alice"
    )

    denied = grpcurl("-d", '{"name_pattern": "holiday"}', address, "p2p.v1.TrackerService/Query")
    assert denied.returncode != 0 and "Unauthenticated" in denied.stderr


def test_health_check_through_grpcurl(address):
    out = grpcurl("-d", '{"service": "p2p.v1.TrackerService"}', address, "grpc.health.v1.Health/Check")
    assert out.returncode == 0 and json.loads(out.stdout)["status"] == "SERVING"


def test_stats_through_grpcurl(address, client_factory):
    for name, files in (("alice", [("a.iso", b"same"), ("b.iso", b"other"), ("c.iso", b"same")]), ("bob", [("d.iso", b"same")])):
        peer = client_factory()
        peer.login(name, address=f"127.0.0.1:{7000 + len(name)}")
        peer.send_index(tpb.SendIndexRequest(mode=tpb.INDEX_MODE_REPLACE, add=[file_entry(n, d) for n, d in files]))
    guesser = client_factory()
    guesser.login("carol", "right")
    for _ in range(6):  # five wrong passwords, then a try that must wait
        with pytest.raises(grpc.RpcError):
            guesser.login("carol", "wrong")
    login = grpcurl("-d", json.dumps({"name": "ops", "password": "pw"}), address, "p2p.v1.TrackerService/Login")
    token = json.loads(login.stdout)["session_token"]
    out = grpcurl("-H", f"authorization: Bearer {token}", "-d", "{}", address, "p2p.v1.TrackerService/GetStats")
    assert out.returncode == 0, out.stderr
    stats = {k: int(v) for k, v in json.loads(out.stdout).items()}  # grpcurl prints 64-bit numbers as strings
    assert stats["live_sessions"] == 4 and stats["serving_peers"] == 2 and stats["accounts"] == 4
    assert stats["files"] == 4 and stats["contents"] == 2 and stats["lease_seconds"] == 60
    assert stats["logins_refused_wrong_passwords"] == 1 and stats.get("logins_refused_busy", 0) == 0
    assert 0 <= stats.get("uptime_seconds", 0) < 600 and stats.get("names_waiting_to_be_indexed", 0) <= 4
