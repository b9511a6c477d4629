"""Faust never commits the offset of an input record it did not process.

faust-streaming 0.15 can skip records silently after a rebalance
(faust-streaming #221, #606): a record prefetched before the rebalance is
handed to the stream out of order; the consumer then sees a jump in
offsets, records the skipped offsets as a "gap" and counts the gap as
acknowledged (``Consumer._add_gap``), and its head check
(``Consumer._new_offset``) lets through any gap when the committed offset
is unknown or 0, and a gap of one record otherwise (it compares with the
committed offset as if it were the last processed record, but it is the
next one to read). The records in the gap are then never processed: in CI,
whole survivors whose identification, consent and request were committed
by the router and never routed.

:func:`strict_offsets` replaces both for the topics named: an offset is
committed only when every record from the committed offset up to it was
processed. A record Faust lost becomes a stall instead of a silent loss,
and the stall watchdog (:mod:`streams.stall`) restarts the worker, which
reads again from the committed offset. Only for topics whose records are
never deleted under a running consumer (no compaction, no retention
shorter than an outage, no transactions): there an offset missing can only
mean a record that was not processed. Other topics (the escalation ticks,
kept one day, any of which the next tick replaces) keep Faust's rule.

Committing nothing past a lost record is not enough: the records after it
would still be processed before it (a referral before its consent). So
:func:`hole_guard` checks each record of a strict topic before it is
processed: a partition must hand over its records without a hole from the
committed offset on, in each consumer generation; on a hole the worker
exits at once for a restart from the committed offset, with nothing past
the hole processed (and no stall watchdog to wait for).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faust.transport import consumer as faust_consumer
from faust.utils.functional import consecutive_numbers

from streams.logs import exit_at_once, get_logger
from streams.offsets import Partition
from streams.stall import EXIT_STALLED

__all__ = ["Continuity", "hole_guard", "strict_offsets", "strict_topics"]

_log = get_logger(__name__)

_STRICT: set[str] = set()
_upstream_new_offset = faust_consumer.Consumer._new_offset
_upstream_add_gap = faust_consumer.Consumer._add_gap


def strict_topics() -> frozenset[str]:
    """The topics whose offsets are committed only over processed records."""
    return frozenset(_STRICT)


def new_offset(consumer: Any, tp: Any) -> int | None:
    """The offset to commit for ``tp``: one past the run of processed records from the committed.

    ``None`` while the record at the committed offset has not been processed.
    """
    if tp.topic not in _STRICT:
        result: int | None = _upstream_new_offset(consumer, tp)
        return result
    acked: list[int] = consumer._acked[tp]
    if not acked:
        return None
    acked.sort()
    # Faust keeps None for "nothing committed yet" and for 0: on a topic whose records
    # are never deleted, reading starts at offset 0 then.
    committed: int = consumer._committed_offset[tp] or 0
    if acked[0] != committed:
        _log.debug(
            "offsets.head_missing", topic=tp.topic, partition=tp.partition, committed=committed
        )
        return None
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    consumer._acked_index[tp].difference_update(batch)
    return int(batch[-1]) + 1


async def add_gap(consumer: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    """Record a jump in offsets: for a strict topic, never as acknowledged records."""
    if tp.topic in _STRICT:
        _log.warning(
            "offsets.jump",
            topic=tp.topic,
            partition=tp.partition,
            unread_from=offset_from,
            read=offset_to,
        )
        return
    await _upstream_add_gap(consumer, tp, offset_from, offset_to)


def strict_offsets(topics: Iterable[str]) -> None:
    """Commit offsets of ``topics`` only over processed records (for every Faust app here)."""
    _STRICT.update(topics)
    # A class-level patch: Faust builds its consumer itself and offers no hook for this.
    setattr(faust_consumer.Consumer, "_new_offset", new_offset)  # noqa: B010
    setattr(faust_consumer.Consumer, "_add_gap", add_gap)  # noqa: B010


class Continuity:
    """Pure: the next offset each partition must hand over, in the current consumer generation."""

    def __init__(self) -> None:
        self._generation: int | None = None
        self._next: dict[Partition, int] = {}

    def hole(
        self, generation: int, partition: Partition, offset: int, committed: int | None
    ) -> int | None:
        """The first offset skipped before ``offset``, or None (in order, or a record again).

        A generation starts each partition at its committed offset (None: 0,
        the log start of a topic whose records are never deleted).
        """
        if generation != self._generation:
            self._generation = generation
            self._next.clear()
        expected = self._next.get(partition, committed or 0)
        if offset > expected:
            return expected
        self._next[partition] = max(expected, offset + 1)
        return None


def hole_guard(
    app: Any, *, hard_exit: Callable[[int], None] = exit_at_once
) -> Callable[[Any], None]:
    """A check to run on each record before it is processed (see the module)."""
    continuity = Continuity()

    def check(message: Any) -> None:
        if message.topic not in _STRICT:
            return
        consumer = app.consumer
        committed: int | None = consumer._committed_offset.get(message.tp)
        where = Partition(message.topic, message.partition)
        skipped = continuity.hole(app.consumer_generation_id, where, message.offset, committed)
        if skipped is not None:
            _log.error(
                "offsets.hole",
                topic=message.topic,
                partition=message.partition,
                unread_from=skipped,
                offset=message.offset,
                exit_code=EXIT_STALLED,
            )
            hard_exit(EXIT_STALLED)

    return check
