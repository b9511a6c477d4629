"""The one offset tracker as the provider SDK uses it: skip, hand out, acknowledge, rewind.

(The webhook connector's uses, generations and offset resets, are in test_webhooks.py.)
"""

from __future__ import annotations

from streams.offsets import OffsetTracker, Partition

T0 = Partition("t", 0)
T1 = Partition("t", 1)


def test_offsets_commit_up_to_the_oldest_item_still_in_hand() -> None:
    tracker = OffsetTracker()
    g0 = tracker.assign(T0)
    tracker.assign(T1)
    assert tracker.track(T0, 10) == g0
    tracker.skip(T0, 11)  # another provider's offer: done as soon as read
    tracker.track(T0, 12)
    tracker.skip(T1, 5)
    assert sorted(tracker.take_ready()) == [(T0, 10), (T1, 6)]
    assert tracker.take_ready() == []

    assert tracker.finish(T0, 12, g0)  # out of order: 10 is still in hand
    assert tracker.take_ready() == []
    assert tracker.finish(T0, 10, g0)
    assert tracker.take_ready() == [(T0, 13)]
    assert not tracker.finish(T0, 10, g0)  # twice: nothing


def test_rewind_gives_back_the_unfinished_and_reads_again_from_the_oldest() -> None:
    tracker = OffsetTracker()
    generation = tracker.assign(T0)
    for offset in (13, 14, 15):
        tracker.track(T0, offset)
    tracker.finish(T0, 14, generation)
    assert tracker.outstanding() == {T0: [13, 15]}
    assert tracker.rewind(T0) == 13
    assert tracker.outstanding() == {}
    assert tracker.position(T0) == 13
    assert tracker.rewind(T0) is None  # nothing left to give back
    # Reading again from 13 is not an offset reset: the generation stays.
    assert tracker.track(T0, 13) == generation


def test_only_the_partitions_asked_for_are_offered_for_commit() -> None:
    tracker = OffsetTracker()
    tracker.skip(T0, 3)
    tracker.skip(T1, 8)
    assert tracker.take_ready([T1]) == [(T1, 9)]
    assert tracker.take_ready() == [(T0, 4)]


def test_a_revoked_partition_is_forgotten_and_its_late_acks_ignored() -> None:
    tracker = OffsetTracker()
    generation = tracker.assign(T0)
    tracker.track(T0, 14)
    tracker.revoke(T0)
    assert tracker.position(T0) is None
    assert not tracker.finish(T0, 14, generation)
