"""Partition stall watchdog: a worker that owns records waiting on a partition must move.

faust-streaming can leave a partition assigned and never fetched after a
rebalance (faust-streaming#629), or an agent stuck on one event, while the
worker still heartbeats. Faust's own bookkeeping is what went wrong, so the
watchdog asks the broker: records waiting (committed < end offset) and a
committed offset unmoved for ``timeout_s`` is a stall. The worker then exits
at once with :data:`EXIT_STALLED`, and its supervisor
(:func:`connectors.worker.run_worker`, systemd, Kubernetes) starts a fresh
one that resumes from the committed offsets. Rebalances, table recovery, a
worker not ready yet and a failed broker query (an outage) restart the count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.clients import consumer_config
from streams.logs import exit_at_once, get_logger
from streams.metrics import CONSUMER_LAG
from streams.offsets import Partition
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

_log = get_logger(__name__)


@dataclass(frozen=True)
class Progress:
    """Where the consumer group stands on one partition, as the broker sees it."""

    committed: int
    """Next offset the group will process (the log start when nothing is committed)."""
    end: int
    """The partition's end offset (high watermark)."""


@dataclass(frozen=True)
class Stall:
    """A partition with records waiting whose committed offset has not moved for ``seconds``."""

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
        self._unchanged_since: dict[Partition, tuple[int, float]] = {}

    def reset(self) -> None:
        """Forget all history: the next observation starts every count afresh."""
        self._unchanged_since.clear()

    def observe(self, now: float, progress: Mapping[Partition, Progress]) -> list[Stall]:
        """Record one observation of the owned partitions; return those stalled.

        A partition caught up or whose committed offset moved starts a new count.
        """
        kept: dict[Partition, tuple[int, float]] = {}
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

    A consumer that never subscribes, so it does not join the group. Blocking.
    """

    def __init__(self, settings: KafkaSettings, group_id: str, timeout_s: float = 10.0) -> None:
        self._config = consumer_config(settings, group_id)
        self._timeout_s = timeout_s
        self._consumer: Consumer | None = None

    def progress(self, owned: Collection[Partition]) -> dict[Partition, Progress]:
        """Raise :class:`KafkaException` when the broker does not answer in time."""
        if self._consumer is None:
            self._consumer = Consumer(self._config)
        consumer = self._consumer
        committed = consumer.committed(
            [TopicPartition(tp.topic, tp.partition) for tp in owned], timeout=self._timeout_s
        )
        result: dict[Partition, Progress] = {}
        for tp in committed:
            if tp.error is not None:
                raise KafkaException(tp.error)
            low, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=self._timeout_s, cached=False
            )
            result[Partition(tp.topic, tp.partition)] = Progress(max(tp.offset, low), high)
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
        probe: Callable[[Collection[Partition]], Mapping[Partition, Progress]],
        detector: StallDetector,
        *,
        ready: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.monotonic,
        hard_exit: Callable[[int], None] = exit_at_once,
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
        progress = None if self._paused() else await self._sample()
        if progress is None or self._paused():  # paused again: a rebalance began meanwhile
            self.detector.reset()
            return []
        CONSUMER_LAG.clear()  # partitions given up at a rebalance are no longer ours to report
        for where, seen in progress.items():
            CONSUMER_LAG.labels(topic=where.topic, partition=str(where.partition)).set(
                max(seen.end - seen.committed, 0)
            )
        stalls = self.detector.observe(self._clock(), progress)
        if stalls:
            self._stop(stalls)
        return stalls

    async def _sample(self) -> Mapping[Partition, Progress] | None:
        """The owned partitions' progress; None when none is owned or the broker did not answer."""
        owned = [
            Partition(tp.topic, tp.partition)
            for tp in self._app.consumer.assignment()
            if tp.topic in self._topics
        ]
        if not owned:
            return None
        try:
            return await asyncio.to_thread(self._probe, owned)
        except KafkaException as exc:
            _log.warning("worker.stall_probe_failed", error=str(exc))
            return None

    def _stop(self, stalls: list[Stall]) -> None:
        """Log the stalls and exit at once, with no graceful stop.

        Faust's graceful stop commits the event the agent was inside, so the
        stuck record would be lost unprocessed (``tests/integration/test_stall_watchdog.py``).
        A hard exit keeps only offsets the periodic commit wrote, all of processed records.
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

    app.timer(max(timeout_s / 6, 1.0))(watchdog.check)

    async def close_probe(_sender: Any, **_kwargs: Any) -> None:  # pragma: no cover - at shutdown
        await asyncio.to_thread(probe.close)

    app.on_before_shutdown.connect(close_probe)
    return watchdog
