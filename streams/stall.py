"""Partition stall watchdog: a worker that owns records waiting on a partition must move.

Why: faust-streaming can leave a partition assigned to a worker and never
fetch it after a rebalance (faust-streaming#629), or leave an agent stuck
on one event. The worker still heartbeats and answers its web page, while
every referral of the survivors on that partition waits. Faust only logs
such cases (``verify_event_path``), and its own bookkeeping is what went
wrong, so the watchdog asks the broker instead: for each partition the
worker owns, the consumer group's committed offset against the partition's
end offset. Records waiting (committed < end) and a committed offset that
has not moved for ``timeout_s`` is a stall. The watchdog then stops the
worker at once with :data:`EXIT_STALLED` (a hard exit: see
:meth:`StallWatchdog._stop`); the worker's supervisor
(:func:`connectors.worker.run_worker`, or systemd / Kubernetes) starts a
fresh one, which rejoins the group and resumes from the committed offsets:
nothing is lost, the at-least-once handlers are idempotent.

No stall is counted while Faust rebalances or recovers tables, before the
worker is ready, or across a failed broker query (an outage is not a
stall: the count restarts when the broker answers again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.clients import consumer_config
from streams.settings import KafkaSettings

__all__ = [
    "EXIT_STALLED",
    "Progress",
    "Stall",
    "StallDetector",
    "StallWatchdog",
    "watch_partitions",
]

EXIT_STALLED = 75
"""Exit code of a worker stopped by the watchdog (``EX_TEMPFAIL``: start it again)."""


_log = structlog.get_logger(__name__)


class TopicPartitionKey(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True)
class Progress:
    """Where the consumer group stands on one partition, as the broker sees it."""

    committed: int
    """Next offset the group will process (the log start when nothing is committed)."""
    end: int
    """The partition's end offset (high watermark)."""


@dataclass(frozen=True)
class Stall:
    """A partition with records waiting whose committed offset has not moved."""

    topic: str
    partition: int
    committed: int
    end: int
    seconds: float


class StallDetector:
    """Pure: which owned partitions have had records waiting and no progress for too long."""

    def __init__(self, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.timeout_s = timeout_s
        self._unchanged_since: dict[TopicPartitionKey, tuple[int, float]] = {}

    def reset(self) -> None:
        """Forget all history: the next observation starts every count afresh."""
        self._unchanged_since.clear()

    def observe(self, now: float, progress: Mapping[TopicPartitionKey, Progress]) -> list[Stall]:
        """Record one observation of the owned partitions; return those stalled.

        A partition caught up (committed ≥ end) or whose committed offset
        moved starts a new count; a partition no longer owned is forgotten.
        """
        kept: dict[TopicPartitionKey, tuple[int, float]] = {}
        stalls: list[Stall] = []
        for tp, where in sorted(progress.items()):
            if where.committed >= where.end:
                continue
            previous = self._unchanged_since.get(tp)
            if previous is None or previous[0] != where.committed:
                kept[tp] = (where.committed, now)
                continue
            kept[tp] = previous
            waited = now - previous[1]
            if waited >= self.timeout_s:
                stalls.append(Stall(tp.topic, tp.partition, where.committed, where.end, waited))
        self._unchanged_since = kept
        return stalls


class BrokerProbe:
    """Committed and end offsets of a consumer group's partitions, asked of the broker.

    A confluent-kafka consumer that never subscribes (it does not join the
    group): it only reads the group's committed offsets and the watermarks.
    Blocking; the watchdog calls it from a thread.
    """

    def __init__(self, settings: KafkaSettings, group_id: str, timeout_s: float = 10.0) -> None:
        self._config = {**consumer_config(settings, group_id=group_id), "enable.auto.commit": False}
        self._timeout_s = timeout_s
        self._consumer: Consumer | None = None

    def progress(self, owned: Collection[TopicPartitionKey]) -> dict[TopicPartitionKey, Progress]:
        """Raise :class:`KafkaException` when the broker does not answer in time."""
        if self._consumer is None:
            self._consumer = Consumer(self._config)
        consumer = self._consumer
        committed = consumer.committed(
            [TopicPartition(tp.topic, tp.partition) for tp in owned], timeout=self._timeout_s
        )
        result: dict[TopicPartitionKey, Progress] = {}
        for tp in committed:
            if tp.error is not None:
                raise KafkaException(tp.error)
            low, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=self._timeout_s, cached=False
            )
            result[TopicPartitionKey(tp.topic, tp.partition)] = Progress(
                committed=max(tp.offset, low), end=high
            )
        return result

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class StallWatchdog:
    """Samples the app's owned partitions and stops the worker on a stall."""

    def __init__(
        self,
        app: Any,
        topics: Collection[str],
        probe: Callable[[Collection[TopicPartitionKey]], Mapping[TopicPartitionKey, Progress]],
        detector: StallDetector,
        *,
        ready: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.monotonic,
        hard_exit: Callable[[int], None] = os._exit,
    ) -> None:
        self._app = app
        self._topics = frozenset(topics)
        self._probe = probe
        self.detector = detector
        self._ready = ready
        self._clock = clock
        self._hard_exit = hard_exit
        self.stalls: list[Stall] = []
        """The stalls that stopped the worker (empty while healthy)."""

    def _paused(self) -> bool:
        app = self._app
        return bool(app.rebalancing or app.in_recovery) or not self._ready()

    async def check(self) -> list[Stall]:
        """One observation; on a stall, log it and stop the worker."""
        if self.stalls:
            return self.stalls  # already stopping
        if self._paused():
            self.detector.reset()
            return []
        owned = [
            TopicPartitionKey(tp.topic, tp.partition)
            for tp in self._app.consumer.assignment()
            if tp.topic in self._topics
        ]
        if not owned:
            self.detector.reset()
            return []
        try:
            progress = await asyncio.to_thread(self._probe, owned)
        except KafkaException as exc:
            _log.warning("worker.stall_probe_failed", error=str(exc))
            self.detector.reset()
            return []
        if self._paused():  # a rebalance began while the broker was asked
            self.detector.reset()
            return []
        stalls = self.detector.observe(self._clock(), progress)
        if stalls:
            await self._stop(stalls)
        return stalls

    async def _stop(self, stalls: list[Stall]) -> None:
        """Log the stalls and exit at once, with no graceful stop.

        Faust's graceful stop acknowledges the event the agent was inside
        when it is cancelled and commits it: the stuck record would be
        committed without ever being processed, and lost (shown by
        ``tests/integration/test_stall_watchdog.py``). A hard exit commits
        nothing more: only offsets the periodic commit already wrote, all of
        processed records, survive, and the fresh worker resumes from there.
        """
        self.stalls = stalls
        for stall in stalls:
            _log.error(
                "worker.partition_stalled",
                topic=stall.topic,
                partition=stall.partition,
                committed=stall.committed,
                end=stall.end,
                seconds=round(stall.seconds, 1),
                exit_code=EXIT_STALLED,
            )
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(ValueError, OSError):  # a closed stream must not stop the exit
                handler.flush()
        self._hard_exit(EXIT_STALLED)


def watch_partitions(
    app: Any,
    settings: KafkaSettings,
    *,
    group_id: str,
    topics: Collection[str],
    timeout_s: float,
    ready: Callable[[], bool] = lambda: True,
) -> StallWatchdog:
    """Install the watchdog on a Faust app: a timer every ``timeout_s / 6`` seconds."""
    probe = BrokerProbe(settings, group_id)
    watchdog = StallWatchdog(app, topics, probe.progress, StallDetector(timeout_s), ready=ready)

    async def check_partitions() -> None:
        await watchdog.check()

    app.timer(max(timeout_s / 6, 1.0))(check_partitions)

    async def close_probe(_sender: Any, **_kwargs: Any) -> None:  # pragma: no cover - at shutdown
        await asyncio.to_thread(probe.close)

    app.on_before_shutdown.connect(close_probe)
    return watchdog
