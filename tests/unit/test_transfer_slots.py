"""A serving peer's transfer slots go to whoever holds fewest of those asking, in turns (peer.transfer_slots)."""

from __future__ import annotations

import pytest

from peer.transfer_slots import (
    EVEN_TURN_SECONDS,
    KEPT_ASK_SECONDS,
    LATEST_ASK_SECONDS,
    OVERDUE_SECONDS,
    SOONEST_ASK_SECONDS,
    TURN_SECONDS,
    WAITING_SECONDS,
    Refused,
    TransferSlots,
    Turn,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def granted(taken: Turn | Refused | None) -> Turn:
    assert isinstance(taken, Turn), taken
    return taken


def refused(taken: Turn | Refused | None) -> Refused:
    assert isinstance(taken, Refused), taken
    return taken


def test_a_free_slot_waits_for_the_caller_refused_meanwhile_who_holds_fewer():
    clock = Clock()
    slots = TransferSlots(2, clock)
    first, _ = granted(slots.take("hog")), granted(slots.take("hog"))
    assert slots.in_use == 2 and slots.waiting() == 0
    assert refused(slots.take("bob")).all_taken  # bob now counts as asking
    assert slots.waiting() == 1
    slots.give_back(first)
    kept = refused(slots.take("hog"))  # hog holds 1, bob 0: the free slot is kept for bob
    assert not kept.all_taken and kept.retry_after == KEPT_ASK_SECONDS
    assert slots.in_use == 1
    clock.now += 1.0
    bobs = granted(slots.take("bob"))
    assert slots.held_by("bob") == 1
    refused(slots.take("hog"))  # full again; nobody else asks, so the next free one is hog's
    slots.give_back(bobs)
    granted(slots.take("hog"))
    slots.give_back(bobs)  # a second give-back of a turn changes nothing
    assert slots.in_use == 2 and slots.held_by("bob") == 0


def test_a_refusal_says_the_callers_place_in_line():
    """1 is next: fewest held first, then longest waiting (as an eDonkey server's queue rank)."""
    clock = Clock()
    slots = TransferSlots(2, clock)
    granted(slots.take("hog")), granted(slots.take("hog"))
    assert refused(slots.take("bob")).place == 1
    clock.now += 0.5
    assert refused(slots.take("carol")).place == 2  # holds none, as bob, who asked first
    assert refused(slots.take("hog")).place == 3  # holds two
    assert refused(slots.take("bob")).place == 1


def test_of_callers_holding_as_few_the_one_waiting_longest_goes_first():
    clock = Clock()
    slots = TransferSlots(3, clock)
    held = granted(slots.take("hog"))
    granted(slots.take("hog")), granted(slots.take("hog"))
    refused(slots.take("bob"))
    clock.now += 0.5
    slots.give_back(held)
    refused(slots.take("carol"))  # holds none, as bob, who asked first
    bobs = granted(slots.take("bob"))
    refused(slots.take("hog"))  # full again: hog waits too
    slots.give_back(bobs)
    clock.now += 0.5
    refused(slots.take("hog"))
    granted(slots.take("carol"))  # carol holds none, hog 2


def test_a_caller_that_stopped_asking_holds_the_slot_back_only_for_a_while():
    clock = Clock()
    slots = TransferSlots(1, clock)
    hogs = granted(slots.take("hog"))
    refused(slots.take("bob"))
    slots.give_back(hogs)
    refused(slots.take("hog"))
    clock.now += WAITING_SECONDS + 0.1  # bob found the file elsewhere and never asked again
    assert slots.waiting() == 0
    granted(slots.take("hog"))


def test_with_every_slot_taken_a_stream_of_a_caller_holding_two_more_than_one_waiting_hands_its_slot_over():
    clock = Clock()
    slots = TransferSlots(3, clock)
    hogs = [granted(slots.take("hog")) for _ in range(2)]
    carols = granted(slots.take("carol"))
    refused(slots.take("bob"))  # waiting, holding none
    assert slots.yielded(hogs[0]) is None  # its turn is not over yet
    clock.now += TURN_SECONDS
    refused(slots.take("bob"))  # still full: bob asks again, as told
    assert slots.yielded(carols) is None  # carol holds 1: her turn, among equals, is longer
    handed = slots.yielded(hogs[0])
    assert handed is not None and slots.in_use == 2 and slots.held_by("hog") == 1
    assert not handed.all_taken  # the free slot is bob's: hog is told to ask again a little later
    assert slots.yielded(hogs[1]) is None  # a free slot now: nobody else gives one up
    refused(slots.take("hog"))
    granted(slots.take("bob"))
    slots.give_back(hogs[0])  # the stream that yielded ends: its slot is not given back twice
    assert slots.in_use == 3 and slots.held_by("hog") == 1


def test_callers_holding_as_many_take_turns():
    """The 17th user of a seed of 16 slots does not wait for someone's whole download: slots
    change hands every EVEN_TURN_SECONDS, each to the one waiting longest."""
    clock = Clock()
    slots = TransferSlots(2, clock)
    alices, bobs = granted(slots.take("alice")), granted(slots.take("bob"))
    clock.now += 1
    assert refused(slots.take("carol")).all_taken
    while clock.now + 2 < 100 + EVEN_TURN_SECONDS:  # carol asks again every ~2 s: nobody gives way
        clock.now += 2
        refused(slots.take("carol"))
        assert slots.yielded(alices) is None and slots.yielded(bobs) is None
    clock.now = 100 + EVEN_TURN_SECONDS
    refused(slots.take("carol"))
    handed = slots.yielded(alices)  # alice's turn is over: her stream ends at its next chunk
    assert handed is not None and slots.held_by("alice") == 0
    assert slots.yielded(bobs) is None  # the free slot is carol's: nobody else gives one up
    refused(slots.take("alice"))  # kept for carol, who has waited longer
    carols = granted(slots.take("carol"))
    assert slots.yielded(bobs) is not None  # bob's turn is over too, and alice waits holding none
    alices = granted(slots.take("alice"))
    clock.now += EVEN_TURN_SECONDS - 1
    refused(slots.take("bob"))
    assert slots.yielded(carols) is None and slots.yielded(alices) is None  # their turns are not over
    clock.now += 1
    refused(slots.take("bob"))
    assert slots.yielded(carols) is not None  # carol's is: bob's turn again
    granted(slots.take("bob"))
    assert slots.in_use == 2 and slots.waiting() == 1  # carol asks now


@pytest.mark.parametrize(
    ("after", "told"), [(0.0, LATEST_ASK_SECONDS), (TURN_SECONDS - 1.2, 1.2), (TURN_SECONDS - 0.1, SOONEST_ASK_SECONDS)]
)
def test_a_refusal_says_when_the_next_turn_the_caller_could_take_ends(after: float, told: float):
    """Asked then, the slot handed over stands free only briefly; never later than 2 s, as any
    transfer may end sooner, nor sooner than 0.5 s."""
    clock = Clock()
    slots = TransferSlots(3, clock)
    for _ in range(2):
        granted(slots.take("hog"))  # turns of 5 s while bob, holding none, waits
    clock.now += 0.5
    granted(slots.take("carol"))  # a turn of EVEN_TURN_SECONDS
    clock.now += after - 0.5
    assert refused(slots.take("bob")).retry_after == pytest.approx(told)


def test_a_turn_long_over_is_not_waited_for_closely():
    """A turn over for longer than OVERDUE_SECONDS belongs to a stream that is not about to hand
    over (an Upload in the middle of a large file): those waiting ask every 2 s, not twice a second."""
    clock = Clock()
    slots = TransferSlots(1, clock)
    granted(slots.take("alice"))
    clock.now += EVEN_TURN_SECONDS + OVERDUE_SECONDS / 2
    assert refused(slots.take("bob")).retry_after == SOONEST_ASK_SECONDS  # its next chunk hands it over
    clock.now += OVERDUE_SECONDS
    assert refused(slots.take("bob")).retry_after == LATEST_ASK_SECONDS


def test_a_refusal_with_no_turn_to_end_says_to_ask_again_in_two_seconds():
    clock = Clock()
    slots = TransferSlots(2, clock)
    granted(slots.take("alice")), granted(slots.take("bob"))
    refused(slots.take("carol"))
    assert refused(slots.take("alice")).retry_after == LATEST_ASK_SECONDS  # alice holds as many as bob: his turn is not hers
