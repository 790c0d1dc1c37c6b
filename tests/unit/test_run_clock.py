"""The stall clock leaves out the times this process did not run, and only those; the stall watch reads it."""

from __future__ import annotations

from peer.run_clock import SUSPENDED_SECONDS, RunClock
from peer.stall import StallWatch
from tests.helpers import ManualClock


def test_time_read_often_counts_whole():
    real = ManualClock()
    clock = RunClock(real)
    start = clock.now()
    for _ in range(600):  # a minute of silence, read every 0.1 s as the downloader does
        real.now += 0.1
        clock.now()
    assert abs(clock.now() - start - 60.0) < 1e-6


def test_a_gap_between_readings_is_left_out():
    """Ctrl-Z and `fg` 95 s later: nobody read the clock meanwhile, and the pause is nobody's silence."""
    real = ManualClock()
    clock = RunClock(real)
    start = clock.now()
    real.now += 0.5
    clock.now()
    real.now += 95.0  # stopped
    real.now += 0.1
    assert abs(clock.now() - start - 0.5) < 1e-6
    real.now += SUSPENDED_SECONDS  # read again at the limit: counted
    assert abs(clock.now() - start - 0.5 - SUSPENDED_SECONDS) < 1e-6


def test_the_stall_watch_fires_on_the_peers_silence_not_on_a_pause_of_its_own():
    real = ManualClock()
    watch = StallWatch(2.0, RunClock(real))
    assert not watch.overdue()
    with watch.waiting():
        real.now += 95.0  # this sender was stopped (Ctrl-Z) and continued
        assert not watch.overdue()
        for _ in range(19):  # then the receiver stays silent, the watch reading every 0.1 s
            real.now += 0.1
            assert not watch.overdue()
        real.now += 0.2
        assert watch.overdue()
    assert not watch.overdue()  # not waiting on the peer: nothing is overdue
