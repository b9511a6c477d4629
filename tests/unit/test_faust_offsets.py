"""Faust commits no offset past an unprocessed record of a strict topic (streams.faust_offsets)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from faust.types import TP
from intervaltree import IntervalTree  # type: ignore[import-untyped]  # Faust's own dependency

from streams.faust_offsets import add_gap, new_offset, strict_offsets, strict_topics

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
