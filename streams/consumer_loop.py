"""The one consumer loop: a subscribed confluent-kafka consumer, its offsets and its rebalances.

For the edges that read Kafka outside Faust (the provider SDK, the webhook
connector, the escalation feed): the :class:`~streams.offsets.OffsetTracker`
follows the assignment (what is finished is committed before a partition
leaves, a lost one is forgotten), and the time of the last assignment keeps
joining the group out of idle timeouts. Each record is the caller's business.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.clients import consumer_config
from streams.exceptions import StreamsError
from streams.logs import get_logger
from streams.offsets import OffsetTracker, Partition
from streams.settings import KafkaSettings

__all__ = ["ConsumeError", "ConsumerLike", "ConsumerLoop", "RebalanceHook"]

log = get_logger(__name__)

RebalanceHook = Callable[[list[Partition]], None]
"""Called with the partitions assigned, revoked or lost (after the tracker is updated on
assignment, before it forgets revoked or lost ones)."""


class ConsumeError(StreamsError):
    """The consumer failed for good (a fatal librdkafka error): it must be replaced."""


class ConsumerLike(Protocol):
    """The part of confluent-kafka's ``Consumer`` the loop needs (a test double can supply it)."""

    def subscribe(self, topics: list[str], *args: Any, **kwargs: Any) -> None: ...

    def poll(self, timeout: float = -1) -> Message | None: ...

    def commit(self, *args: Any, **kwargs: Any) -> Any: ...

    def seek(self, partition: TopicPartition) -> None: ...

    def close(self) -> None: ...


def _partitions(partitions: Sequence[TopicPartition]) -> list[Partition]:
    return [Partition(tp.topic, tp.partition) for tp in partitions]


def _names(partitions: Iterable[Partition]) -> list[str]:
    return [f"{p.topic}[{p.partition}]" for p in partitions]


class ConsumerLoop:
    """One consumer subscribed to ``topics`` in ``group_id``, with its offset tracker.

    ``name`` prefixes the log events. ``on_error`` receives every consumer
    error but end-of-partition; by default a fatal one raises
    :class:`ConsumeError` and the others are logged. Not thread-safe, as
    confluent-kafka consumers are not.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        topics: Sequence[str],
        *,
        name: str,
        overrides: Mapping[str, Any] | None = None,
        consumer: ConsumerLike | None = None,
        on_assign: RebalanceHook | None = None,
        on_revoke: RebalanceHook | None = None,
        on_lost: RebalanceHook | None = None,
        on_error: Callable[[KafkaError], None] | None = None,
        log_rebalances: bool = True,
    ) -> None:
        self.name = name
        self.topics = list(topics)
        self.tracker = OffsetTracker()
        self.assigned_at = -math.inf
        """When partitions were last assigned (``time.monotonic``)."""
        self._hooks = (on_assign, on_revoke, on_lost)
        self._on_error = on_error or self._default_on_error
        self._log_rebalances = log_rebalances
        config = consumer_config(
            settings, group_id, **{"on_commit": self._on_commit, **dict(overrides or {})}
        )
        self.consumer: ConsumerLike = consumer if consumer is not None else Consumer(config)
        self.consumer.subscribe(
            self.topics,
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._lost,
        )

    def _assigned(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        assigned = _partitions(partitions)
        for partition in assigned:
            self.tracker.assign(partition)
        self.assigned_at = time.monotonic()
        if self._log_rebalances:
            log.info(f"{self.name}.assigned", partitions=_names(assigned))
        if self._hooks[0] is not None:
            self._hooks[0](assigned)

    def _revoked(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        """Commit what is finished before another consumer takes the partitions over."""
        revoked = _partitions(partitions)
        self.commit(revoked)
        if self._hooks[1] is not None:
            self._hooks[1](revoked)
        for partition in revoked:
            self.tracker.revoke(partition)
        if self._log_rebalances:
            log.info(f"{self.name}.revoked", partitions=_names(revoked))

    def _lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        """Partitions lost without a clean hand-over: commits would fail, just forget them."""
        lost = _partitions(partitions)
        if self._hooks[2] is not None:
            self._hooks[2](lost)
        for partition in lost:
            self.tracker.revoke(partition)
        log.warning(f"{self.name}.lost", partitions=_names(lost))

    def _default_on_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise ConsumeError(f"the consumer failed: {error.name()}")
        log.warning(f"{self.name}.consumer_error", error=error.name())

    def _record(self, message: Message | None) -> Message | None:
        """``message`` if it is a record; errors go to ``on_error`` and give None."""
        if message is None:
            return None
        error = message.error()
        if error is None:
            return message
        if error.code() != KafkaError._PARTITION_EOF:
            self._on_error(error)
        return None

    def poll(self, timeout_s: float) -> Message | None:
        """The next record, or None (nothing within ``timeout_s``, or an error event)."""
        return self._record(self.consumer.poll(timeout_s))

    def consume(self, max_records: int, timeout_s: float) -> list[Message]:
        """Up to ``max_records`` records at once (``timeout_s`` 0: what is already fetched)."""
        consumer: Any = self.consumer  # consume() is the real consumer's, not the protocol's
        batch: list[Message] = consumer.consume(max_records, timeout=timeout_s)
        return [m for m in (self._record(message) for message in batch) if m is not None]

    def records(
        self,
        *,
        poll_s: float,
        idle_timeout_s: float | None = None,
        on_quiet: Callable[[], None] | None = None,
    ) -> Iterator[Message]:
        """Records as they come, until none came for ``idle_timeout_s`` (forever if None).

        The idle clock counts from the latest record or assignment, whichever
        is later. ``on_quiet`` runs after each poll that returned nothing.
        """
        quiet_since = time.monotonic()
        while True:
            quiet_since = max(quiet_since, self.assigned_at)
            if idle_timeout_s is not None and time.monotonic() - quiet_since > idle_timeout_s:
                return
            message = self.poll(poll_s)
            if message is None:
                if on_quiet is not None:
                    on_quiet()
                continue
            quiet_since = time.monotonic()
            yield message

    def seek(self, partition: Partition, offset: int) -> None:
        """Read ``partition`` again from ``offset``."""
        self.consumer.seek(TopicPartition(partition.topic, partition.partition, offset))

    def pause_all(self) -> None:
        """Stop fetching every assigned partition (again each time: new ones too)."""
        consumer: Any = self.consumer
        consumer.pause(consumer.assignment())

    def resume_all(self) -> None:
        """Fetch every assigned partition again."""
        consumer: Any = self.consumer
        consumer.resume(consumer.assignment())

    def commit(
        self, only: Iterable[Partition] | None = None, *, asynchronous: bool = False
    ) -> bool:
        """Commit the positions the tracker says moved (of ``only``, if given).

        False when the commit failed: the positions are offered again by the next one.
        """
        ready = self.tracker.take_ready(only)
        if not ready:
            return True
        offsets = [TopicPartition(p.topic, p.partition, position) for p, position in ready]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            for partition, _ in ready:
                self.tracker.commit_failed(partition)
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            log.warning(f"{self.name}.commit_failed", error=error.name() if error else str(exc))
            return False
        return True

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """An asynchronous commit failed: offer those positions again."""
        failed = [tp for tp in partitions if error is not None or tp.error is not None]
        for tp in failed:
            self.tracker.commit_failed(Partition(tp.topic, tp.partition))
        if failed:
            log.warning(
                f"{self.name}.commit_failed",
                error=error.name() if error is not None else "partition error",
                partitions=_names(_partitions(failed)),
            )

    def close(self) -> None:
        """Commit what is finished and leave the group (revoking what was assigned)."""
        self.commit()
        self.consumer.close()
