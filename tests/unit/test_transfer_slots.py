"""A serving peer's transfer slots go to whoever holds fewest of those asking (peer.transfer_slots)."""

from __future__ import annotations

from peer.transfer_slots import TURN_SECONDS, WAITING_SECONDS, TransferSlots


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_free_slot_waits_for_the_caller_refused_meanwhile_who_holds_fewer():
    clock = Clock()
    slots = TransferSlots(2, clock)
    first, second = slots.take("hog"), slots.take("hog")
    assert first and second and slots.in_use == 2
    assert slots.waiting() == 0
    assert slots.take("bob") is None  # all taken: bob now counts as asking
    assert slots.waiting() == 1
    slots.give_back(first)
    assert slots.take("hog") is None  # hog holds 1, bob 0: the free slot is kept for bob
    assert slots.in_use == 1
    clock.now += 1.0
    turn = slots.take("bob")
    assert turn is not None and slots.held_by("bob") == 1
    assert slots.take("hog") is None  # full again; nobody else asks, so the next free one is hog's
    slots.give_back(turn)
    assert slots.take("hog") is not None
    slots.give_back(turn)  # a second give-back of a turn changes nothing
    assert slots.in_use == 2 and slots.held_by("bob") == 0


def test_of_callers_holding_as_few_the_one_waiting_longest_goes_first():
    clock = Clock()
    slots = TransferSlots(3, clock)
    held = slots.take("hog")
    slots.take("hog"), slots.take("hog")
    assert slots.take("bob") is None
    clock.now += 0.5
    slots.give_back(held)
    assert slots.take("carol") is None  # holds none, as bob, who asked first
    bobs = slots.take("bob")
    assert bobs is not None
    assert slots.take("hog") is None  # full again: hog waits too
    slots.give_back(bobs)
    clock.now += 0.5
    assert slots.take("hog") is None and slots.take("carol") is not None  # carol holds none, hog 2


def test_a_caller_that_stopped_asking_holds_the_slot_back_only_for_a_while():
    clock = Clock()
    slots = TransferSlots(1, clock)
    turn = slots.take("hog")
    assert turn is not None and slots.take("bob") is None
    slots.give_back(turn)
    assert slots.take("hog") is None
    clock.now += WAITING_SECONDS + 0.1  # bob found the file elsewhere and never asked again
    assert slots.waiting() == 0
    assert slots.take("hog") is not None


def test_with_every_slot_taken_a_stream_of_a_caller_holding_two_more_than_one_waiting_hands_its_slot_over():
    clock = Clock()
    slots = TransferSlots(3, clock)
    hogs = [slots.take("hog") for _ in range(2)]
    other = slots.take("carol")
    assert all(hogs) and other is not None
    assert slots.take("bob") is None  # waiting, holding none
    assert not slots.yielded(hogs[0])  # its turn is not over yet
    clock.now += TURN_SECONDS
    assert slots.take("bob") is None  # still full: bob asks again, as it does every ~2 s
    assert not slots.yielded(other)  # carol holds 1: handing it over would not even them out
    assert slots.yielded(hogs[0]) and slots.in_use == 2 and slots.held_by("hog") == 1
    assert not slots.yielded(hogs[1])  # a free slot now: nobody else gives one up
    assert slots.take("hog") is None and slots.take("bob") is not None
    slots.give_back(hogs[0])  # the stream that yielded ends: its slot is not given back twice
    assert slots.in_use == 3 and slots.held_by("hog") == 1
