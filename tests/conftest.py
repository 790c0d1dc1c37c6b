"""Shared fixtures: a real tracker on 127.0.0.1:0 with a real SQLite file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import TrackerClientForTests
from tracker.config import TrackerConfig
from tracker.server import Tracker, start_tracker


@pytest.fixture
def start_tracker_at(tmp_path: Path) -> Iterator[Callable[..., Tracker]]:
    started: list[Tracker] = []

    def start(**overrides: object) -> Tracker:
        settings: dict[str, object] = {"listen": "127.0.0.1:0", "db": str(tmp_path / "tracker.db"), "max_workers": 16}
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
