"""Login limits on a fake clock: growing waits after wrong passwords, and a cap on concurrent hashing."""

from __future__ import annotations

import threading

import pytest

from p2p_common.errors import ResourceExhausted
from tests.helpers import ManualClock
from tracker.login_guard import MAX_DELAY, LoginGuard


def test_wrong_passwords_past_the_free_ones_make_each_try_wait_longer():
    clock = ManualClock()
    guard = LoginGuard(free_failures=3, clock=clock)
    for _ in range(3):
        guard.check_allowed("alice", "ipv4:10.0.0.9")
        guard.failed("alice", "ipv4:10.0.0.9")
    waits = []
    for _ in range(4):
        with pytest.raises(ResourceExhausted, match="wrong passwords for 'alice' from this host; try again in"):
            guard.check_allowed("alice", "ipv4:10.0.0.9")
        wait = 0.0
        while True:  # find how long it holds
            wait += 0.5
            clock.now += 0.5
            try:
                guard.check_allowed("alice", "ipv4:10.0.0.9")
                break
            except ResourceExhausted:
                pass
        waits.append(wait)
        guard.failed("alice", "ipv4:10.0.0.9")
    assert waits == [2.0, 4.0, 8.0, 16.0]
    guard.check_allowed("alice", "ipv4:10.0.0.7")  # the owner, from elsewhere, is not locked out
    guard.check_allowed("bob", "ipv4:10.0.0.9")
    guard.succeeded("alice", "ipv4:10.0.0.9")  # a right password clears the count
    guard.check_allowed("alice", "ipv4:10.0.0.9")


def test_the_wait_stops_growing_at_its_maximum():
    clock = ManualClock()
    guard = LoginGuard(free_failures=0, clock=clock)
    for _ in range(40):
        guard.failed("alice", "h")
    clock.now += MAX_DELAY - 1
    with pytest.raises(ResourceExhausted):
        guard.check_allowed("alice", "h")
    clock.now += 1.5
    guard.check_allowed("alice", "h")


def test_password_hashing_beyond_the_slots_is_refused_after_a_short_wait():
    guard = LoginGuard(concurrent=1, wait_seconds=0.05)
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with guard.hashing():
            inside.set()
            leave.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    with pytest.raises(ResourceExhausted, match="busy checking passwords"), guard.hashing():
        pass
    leave.set()
    holder.join()
    with guard.hashing():  # the slot came back
        pass
