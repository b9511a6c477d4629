"""Contract of the one consumer loop: over ScriptedConsumer as over the real broker.

What the provider SDK, the webhook connector and the escalation feed rely
on (:class:`streams.consumer_loop.ConsumerLoop`): :meth:`records` yields
each record once, in offset order per partition, after the assignment hook
ran and the idle clock was reset; closing commits the finished prefix of
each partition (calling the revoke hook), and the group's next consumer
starts at the oldest record not finished. The cases run on the double too,
so unit tests of the SDK over :class:`~tests.doubles.ScriptedConsumer`
stay honest.
"""

from __future__ import annotations

import math
import time

from streams.consumer_loop import ConsumerLoop
from streams.offsets import Partition
from streams.settings import KafkaSettings
from tests.contract.test_consumer import RECORDS, ConsumerSide, group, per_partition, side

__all__ = ["side"]  # the fixture, shared with test_consumer.py


def loop_of(side: ConsumerSide, topic: str, group_id: str, **hooks: object) -> ConsumerLoop:
    return ConsumerLoop(
        KafkaSettings(),  # unused: the side builds the consumer
        group_id,
        [topic],
        name="contract",
        consumer=side.consumer(group_id),
        **hooks,  # type: ignore[arg-type]
    )


def take(loop: ConsumerLoop, count: int) -> list[tuple[Partition, int, int]]:
    """Up to ``count`` records as (partition, offset, generation), tracked as in hand."""
    got = []
    for message in loop.records(poll_s=0.1, idle_timeout_s=10.0):
        where = Partition(str(message.topic()), message.partition() or 0)
        offset = message.offset() or 0
        got.append((where, offset, loop.tracker.track(where, offset)))
        if len(got) == count:
            break
    return got


def test_records_come_once_in_order_after_the_assignment(side: ConsumerSide) -> None:
    topic = side.seed(2, RECORDS)
    assigned: list[list[Partition]] = []
    loop = loop_of(side, topic, group(), on_assign=assigned.append)
    assert loop.assigned_at == -math.inf
    got = take(loop, 5)
    assert sorted(p.partition for batch in assigned for p in batch) == [0, 1]
    assert loop.assigned_at <= time.monotonic()
    found: dict[int, list[int]] = {}
    for where, offset, _ in got:
        found.setdefault(where.partition, []).append(offset)
    assert found == {0: [0, 1, 2], 1: [0, 1]}
    assert loop.poll(0.3) is None
    loop.close()


def test_closing_commits_the_finished_prefix_for_the_groups_next_consumer(
    side: ConsumerSide,
) -> None:
    topic = side.seed(2, RECORDS)
    group_id = group()
    revoked: list[list[Partition]] = []
    first = loop_of(side, topic, group_id, on_revoke=revoked.append)
    for where, offset, generation in take(first, 5):
        if (where.partition, offset) != (0, 1):  # partition 0, offset 1 is still in hand
            first.tracker.finish(where, offset, generation)
    first.close()
    assert sorted(p.partition for batch in revoked for p in batch) == [0, 1]

    second = loop_of(side, topic, group_id)
    again = list(second.records(poll_s=0.1, idle_timeout_s=3.0))
    assert per_partition(again) == {0: [1, 2]}  # from the oldest record not finished
    second.close()


def test_the_idle_clock_counts_from_the_assignment(side: ConsumerSide) -> None:
    topic = side.seed(1, [])
    loop = loop_of(side, topic, group())
    started = time.monotonic()
    assert list(loop.records(poll_s=0.1, idle_timeout_s=0.5)) == []
    assert loop.assigned_at >= started  # it was assigned while it waited...
    assert time.monotonic() - loop.assigned_at > 0.5  # ...and idle for the timeout since
    loop.close()
