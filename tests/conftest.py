"""Shared fixtures: a real tracker and real peers on 127.0.0.1:0, real SQLite files and shares."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from p2p.v1.peer_pb2_grpc import PeerServiceStub
from p2p_common.auth import bearer_metadata
from peer.config import PeerConfig
from peer.node import PeerNode, start_peer
from peer.tracker_client import TrackerClient
from tests.helpers import TrackerClientForTests
from tracker.config import TrackerConfig
from tracker.server import Tracker, start_tracker

# Tests send SIGINT to commands, as Ctrl-C does. A suite started in the background by a shell
# without job control (`scripts/test.sh &` in a script) has SIGINT ignored, and every command it
# starts would inherit that and run on. A handler of our own is reset to the default at exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def start_tracker_at(tmp_path: Path) -> Iterator[Callable[..., Tracker]]:
    started: list[Tracker] = []

    def start(**overrides: object) -> Tracker:
        settings: dict[str, object] = {"listen": "127.0.0.1:0", "db": str(tmp_path / "tracker.db"), "max_workers": 16}
        settings["probe_seconds"] = 0  # tests list made-up addresses (10.1.0.7:50052) that must not be dialled
        settings.update(overrides)
        tracker = start_tracker(TrackerConfig(**settings))  # type: ignore[arg-type]
        started.append(tracker)
        return tracker

    yield start
    for tracker in started:
        tracker.stop(grace=0)


@pytest.fixture
def tracker(start_tracker_at: Callable[..., Tracker]) -> Tracker:
    return start_tracker_at()


@pytest.fixture
def client_factory(tracker: Tracker) -> Iterator[Callable[[], TrackerClientForTests]]:
    clients: list[TrackerClientForTests] = []

    def make() -> TrackerClientForTests:
        c = TrackerClientForTests(f"127.0.0.1:{tracker.port}")
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def start_peer_at(tracker: Tracker, tmp_path: Path) -> Iterator[Callable[..., PeerNode]]:
    """Start a serving peer on 127.0.0.1:0 with its own share directory, ready (index published)."""
    started: list[PeerNode] = []

    def start(name: str, files: dict[str, bytes] | None = None, wait: bool = True, **overrides: object) -> PeerNode:
        share = tmp_path / f"share-{name}"
        share.mkdir(exist_ok=True)
        for rel, data in (files or {}).items():
            path = share / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            old = time.time() - 10  # settled: not "still being written"
            os.utime(path, (old, old))
        settings: dict[str, object] = {
            "tracker": f"127.0.0.1:{tracker.port}",
            "name": name,
            "password": "pw",
            "share": share,
            "listen": "127.0.0.1:0",
            "rescan_seconds": 0.3,
            "max_transfers": 8,
        }
        settings.update(overrides)
        node = start_peer(PeerConfig(**settings))  # type: ignore[arg-type]
        started.append(node)
        if wait:
            assert node.keeper.ready.wait(15), f"peer {name} did not publish its index"
        return node

    yield start
    for node in started:
        with contextlib.suppress(Exception):  # stopped already by the test
            node.stop(grace=0)


@pytest.fixture
def peer_stub(client: TrackerClient) -> Iterator[Callable[[PeerNode, str], tuple[PeerServiceStub, tuple[tuple[str, str], ...]]]]:
    """A PeerService stub to a serving peer (named as it logged in), and the metadata with a
    ticket for it from `client`: for calls made by hand at the wire."""
    channels: list[grpc.Channel] = []

    def stub(node: PeerNode, name: str) -> tuple[PeerServiceStub, tuple[tuple[str, str], ...]]:
        channels.append(grpc.insecure_channel(f"127.0.0.1:{node.port}"))
        return PeerServiceStub(channels[-1]), bearer_metadata(client.ticket(name))

    yield stub
    for channel in channels:
        channel.close()


@pytest.fixture
def client(tracker: Tracker) -> Iterator[TrackerClient]:
    """A client-only session, as the CLI's search/get/put use."""
    c = TrackerClient(f"127.0.0.1:{tracker.port}", "tester", "pw")
    c.login()
    yield c
    c.close()
