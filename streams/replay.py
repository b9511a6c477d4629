"""The one replay reader: every partition of some topics from the start, then followed.

For readers that must see whole topics and know when they have caught up
(the router's :class:`processors.router.DirectoryView`, the intake's
:class:`connectors.intake.status.StatusStore`): an aiokafka consumer without
a group, so nothing is committed and a restart reads from the start again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.clients import aiokafka_config
from streams.exceptions import StreamsError
from streams.logs import get_logger
from streams.settings import KafkaSettings

__all__ = ["MissingTopicsError", "ReplayReader"]

log = get_logger(__name__)


class MissingTopicsError(StreamsError):
    """A topic to replay does not exist (or has no partitions): provision it first."""


class ReplayReader:
    """Reads ``topics`` from the beginning without a consumer group, then follows them.

    ``apply`` gets each aiokafka ``ConsumerRecord``, in order per partition,
    and must not raise for a bad record. ``on_caught_up`` is called once, when
    every partition reached the end offset seen at start. ``name`` names the
    client and the log events.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Sequence[str],
        *,
        name: str,
        apply: Callable[[Any], None],
        on_caught_up: Callable[[], None] | None = None,
        poll_ms: int = 500,
        max_records: int = 1000,
    ) -> None:
        """Nothing connects before :meth:`run`."""
        self.settings = settings
        self.topics = tuple(topics)
        self.name = name
        self._apply = apply
        self._on_caught_up = on_caught_up
        self._poll_ms = poll_ms
        self._max_records = max_records
        self.caught_up = False

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **aiokafka_config(
                self.settings,
                client_id=f"{self.settings.client_id}-{self.name}",
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
        )

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        # consumer.topics() does not refresh the metadata partitions_for_topic
        # reads (aiokafka 0.14); ask the client for the cluster metadata itself.
        cluster = await consumer._client.fetch_all_metadata()
        found = {topic: sorted(cluster.partitions_for_topic(topic) or ()) for topic in self.topics}
        missing = [topic for topic, partitions in found.items() if not partitions]
        if missing:
            raise MissingTopicsError(
                f"{', '.join(missing)} do(es) not exist: run `safepassage topics provision`"
            )
        return [TopicPartition(topic, p) for topic, partitions in found.items() for p in partitions]

    async def run(self) -> None:
        """Replay, then follow, until cancelled; raises what the consumer cannot recover from."""
        consumer = self._consumer()
        try:
            await consumer.start()  # a failed start must be stopped too (its client is open)
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)
            while True:
                batch = await consumer.getmany(
                    timeout_ms=self._poll_ms, max_records=self._max_records
                )
                for records in batch.values():
                    for record in records:
                        self._apply(record)
                if not self.caught_up:
                    positions = [await consumer.position(tp) for tp in partitions]
                    if all(pos >= end[tp] for pos, tp in zip(positions, partitions, strict=True)):
                        self.caught_up = True
                        log.info(f"{self.name}.caught_up", partitions=len(partitions))
                        if self._on_caught_up is not None:
                            self._on_caught_up()
        finally:
            await consumer.stop()
