"""The serve rate: a burst at once, then chunks spaced at the rate, shared by every stream."""

from __future__ import annotations

import pytest

from peer.throttle import Throttle
from tests.helpers import ManualClock

MiB = 1 << 20


def test_a_burst_goes_at_once_then_chunks_wait_their_turn_at_the_rate():
    clock = ManualClock()
    throttle = Throttle(4 * MiB, clock)  # a 1 MiB chunk is 0.25 s of the rate: the burst
    assert throttle.take(MiB) == 0
    waits = [throttle.take(MiB) for _ in range(4)]
    assert waits == pytest.approx([0.25, 0.5, 0.75, 1.0])  # four more MiB: one second at 4 MiB/s
    clock.now += 10  # idle time is not saved up beyond the burst
    assert throttle.take(MiB) == 0
    assert throttle.take(MiB) == pytest.approx(0.25)


def test_streams_share_one_rate():
    clock = ManualClock()
    throttle = Throttle(2 * MiB, clock)
    sent_at = []
    for _ in range(3):  # three streams, each taking a chunk in turn, as their threads would
        for _stream in range(3):
            sent_at.append(clock.now + throttle.take(MiB))
    assert sent_at == sorted(sent_at)
    assert max(sent_at) - min(sent_at) == pytest.approx(8 * 0.5)  # 9 chunks at 2 MiB/s: the last 4 s after the first


def test_rates_too_low_to_be_a_cap_are_refused():
    with pytest.raises(ValueError, match="at least 65536 bytes/s"):
        Throttle(1000)
