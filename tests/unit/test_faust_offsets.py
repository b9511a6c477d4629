"""Faust commits no offset past an unprocessed record of a strict topic (streams.faust_offsets)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st
from intervaltree import IntervalTree  # type: ignore[import-untyped]  # Faust's own dependency

from streams.faust_offsets import (
    Continuity,
    add_gap,
    hole_guard,
    new_offset,
    strict_offsets,
    strict_topics,
)
from streams.offsets import Partition
from streams.stall import EXIT_STALLED

STRICT = "offsets-test.intake.v1"
LENIENT = "offsets-test.escalation-ticks.v1"


class Bookkeeping:
    """The attributes of Faust's consumer that its offset rules read and write."""

    def __init__(self, committed: int | None, acked: list[int], topic: str) -> None:
        self.tp = TP(topic, 0)
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._committed_offset[self.tp] = committed
        self._acked: defaultdict[TP, list[int]] = defaultdict(list)
        self._acked[self.tp] = list(acked)
        self._acked_index: defaultdict[TP, set[int]] = defaultdict(set)
        self._acked_index[self.tp] = set(acked)
        self._gap: defaultdict[TP, Any] = defaultdict(IntervalTree)


@pytest.fixture(autouse=True)
def _strict() -> None:
    strict_offsets([STRICT])


def test_strict_topics_are_registered() -> None:
    assert STRICT in strict_topics() and LENIENT not in strict_topics()


def test_a_run_from_the_committed_offset_is_committed() -> None:
    consumer = Bookkeeping(committed=5, acked=[7, 5, 6, 9], topic=STRICT)
    assert new_offset(consumer, consumer.tp) == 8
    assert consumer._acked[consumer.tp] == [9]
    assert consumer._acked_index[consumer.tp] == {9}


@pytest.mark.parametrize(
    ("committed", "acked"),
    [
        (5, [6, 7]),  # the record at the committed offset missing: Faust commits 8
        (None, [3, 4]),  # nothing committed yet: reading starts at 0
        (0, [1]),  # Faust keeps 0 as None and then checks nothing
    ],
)
def test_no_offset_is_committed_while_the_record_at_the_committed_offset_is_unprocessed(
    committed: int | None, acked: list[int]
) -> None:
    consumer = Bookkeeping(committed=committed, acked=acked, topic=STRICT)
    assert new_offset(consumer, consumer.tp) is None
    assert consumer._acked[consumer.tp] == acked  # kept for when the head arrives


def test_faust_itself_would_skip_the_missing_record() -> None:
    """The upstream rule, kept for lenient topics: the reason this module exists."""
    consumer = Bookkeeping(committed=5, acked=[6, 7], topic=LENIENT)
    assert new_offset(consumer, consumer.tp) == 8  # offset 5 never processed, yet committed


async def test_a_jump_in_offsets_is_not_counted_as_processed_on_a_strict_topic() -> None:
    consumer = Bookkeeping(committed=5, acked=[], topic=STRICT)
    await add_gap(consumer, consumer.tp, 5, 9)
    consumer._acked[consumer.tp] = [9]
    assert new_offset(consumer, consumer.tp) is None


async def test_a_jump_on_a_lenient_topic_keeps_faust_s_rule() -> None:
    consumer = Bookkeeping(committed=5, acked=[], topic=LENIENT)
    await add_gap(consumer, consumer.tp, 5, 9)
    consumer._acked[consumer.tp] = [9]
    assert new_offset(consumer, consumer.tp) == 10


# ----------------------------------------------------------------- holes in what Faust hands over


@given(
    committed=st.integers(0, 50),
    steps=st.lists(st.integers(-3, 3), max_size=40),
)
def test_records_in_order_or_again_pass_and_the_first_skip_is_named(
    committed: int, steps: list[int]
) -> None:
    """Whatever is handed over, a record is let through only if none before it was skipped."""
    continuity, where = Continuity(), Partition(STRICT, 0)
    processed: set[int] = set(range(committed))  # committed: everything before was processed
    offset = committed
    for step in steps:
        offset = max(0, offset + step)
        skipped = continuity.hole(1, where, offset, committed)
        missing = [o for o in range(offset) if o not in processed]
        if missing:
            assert skipped == missing[0]
            return  # the worker stops here
        assert skipped is None
        processed.add(offset)


def test_a_new_generation_starts_again_at_the_committed_offset() -> None:
    continuity, where = Continuity(), Partition(STRICT, 0)
    assert continuity.hole(1, where, 0, None) is None  # nothing committed: the log start
    assert continuity.hole(1, where, 1, None) is None
    assert continuity.hole(1, where, 5, None) == 2
    assert continuity.hole(2, where, 7, 7) is None  # after a rebalance, from the committed
    assert continuity.hole(2, where, 9, 7) == 8


class GuardedApp:
    """What :func:`hole_guard` reads of the Faust app."""

    def __init__(self, committed: int | None) -> None:
        self.consumer = Bookkeeping(committed, [], STRICT)
        self.consumer_generation_id = 3


class Record:
    def __init__(self, topic: str, offset: int) -> None:
        self.topic, self.partition, self.offset, self.tp = topic, 0, offset, TP(topic, 0)


def test_the_guard_stops_the_worker_before_a_record_past_a_hole() -> None:
    exits: list[int] = []
    check = hole_guard(GuardedApp(committed=4), hard_exit=exits.append)
    check(Record(STRICT, 4))
    check(Record(LENIENT, 99))  # ticks keep Faust's rule: a lost tick is replaced by the next
    assert exits == []
    check(Record(STRICT, 6))  # 5 was never handed over
    assert exits == [EXIT_STALLED]
