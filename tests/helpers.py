"""Test helpers: start real servers on loopback and wait on conditions with a deadline."""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import grpc

from p2p.v1 import tracker_pb2 as tpb
from p2p.v1 import tracker_pb2_grpc
from p2p_common.auth import bearer_metadata

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> T:
    """Poll predicate until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def stop_processes(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every process still running (servers log out and drain), a kill after 15 s."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ManualClock:
    """A clock that moves only when a test sets or adds to `now`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    """A loopback port free right now, for servers started as processes (in-process ones bind :0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_entry(name: str, content: bytes = b"x", chunk_size: int = 1 << 20) -> tpb.FileEntry:
    chunks = [content[i : i + chunk_size] for i in range(0, len(content), chunk_size)]
    digest_list = b"".join(hashlib.sha256(c).digest() for c in chunks)
    return tpb.FileEntry(
        name=name,
        size=len(content),
        sha256=sha256_hex(content),
        chunk_size=chunk_size,
        chunk_list_sha256=sha256_hex(digest_list),
    )


class TrackerClientForTests:
    """Thin wrapper over the generated stub that remembers a session token."""

    def __init__(self, address: str):
        self.channel = grpc.insecure_channel(address)
        self.stub = tracker_pb2_grpc.TrackerServiceStub(self.channel)
        self.token = ""

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return bearer_metadata(self.token)

    def login(self, name: str, password: str = "pw", address: str = "") -> tpb.LoginResponse:
        reply = self.stub.Login(tpb.LoginRequest(name=name, password=password, address=address), timeout=10)
        self.token = reply.session_token
        return reply

    def send_index(self, *requests: tpb.SendIndexRequest) -> tpb.SendIndexResponse:
        return self.stub.SendIndex(iter(requests), metadata=self.md, timeout=30)

    def query(self, pattern: str = "", sha256: str = "", page_size: int = 0, page_token: str = "") -> tpb.QueryResponse:
        request = tpb.QueryRequest(name_pattern=pattern, sha256=sha256, page_size=page_size, page_token=page_token)
        return self.stub.Query(request, metadata=self.md, timeout=10)

    def close(self) -> None:
        self.channel.close()
