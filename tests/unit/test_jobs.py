"""Several files at once: jobs run side by side, a failure is one item's, a stop stops the rest."""

from __future__ import annotations

import threading
from contextlib import closing

import pytest

from p2p_common.errors import NotFound
from peer.jobs import each_at_once


def test_jobs_run_side_by_side_and_each_ends_with_its_result_or_error():
    together = threading.Barrier(3, timeout=10)  # broken (an error) unless 3 items run at once

    def work(n: int) -> int:
        if n < 3:
            together.wait()
        if n == 4:
            raise NotFound("no such item")
        return n * 10

    outcomes = dict(each_at_once([0, 1, 2, 3, 4, 5], 3, work, threading.Event()))
    assert {k: v for k, v in outcomes.items() if k != 4} == {0: 0, 1: 10, 2: 20, 3: 30, 5: 50}
    assert isinstance(outcomes[4], NotFound)


def test_a_bug_in_one_item_is_its_error_and_the_others_go_on(caplog):
    def work(n: int) -> int:
        return 1 // n

    outcomes = dict(each_at_once([0, 1, 2], 2, work, threading.Event()))
    assert outcomes[1] == 1 and outcomes[2] == 0 and "ZeroDivisionError" in str(outcomes[0])


def test_stopping_early_starts_no_more_items():
    started: list[int] = []
    cancel = threading.Event()

    def work(n: int) -> int:
        started.append(n)
        if n > 0:
            cancel.wait(10)  # under way when the caller stops: it ends soon after, as a transfer does
        return n

    with closing(each_at_once(list(range(100)), 1, work, cancel)) as outcomes:
        assert next(outcomes) == (0, 0)
    assert cancel.is_set() and started == [0, 1]


@pytest.mark.parametrize("jobs", [1, 8])
def test_every_item_ends_once(jobs):
    assert sorted(each_at_once(list(range(20)), jobs, lambda n: n, threading.Event())) == [(n, n) for n in range(20)]
