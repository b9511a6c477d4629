"""Every worker's whole copy of the provider directory and the capacity ledger.

Routing needs every provider and every free place, whichever partitions a
worker owns, so this reader is no consumer-group member: it replays both
topics from the start (all partitions) and then follows them. The ``cases``
agent waits for :attr:`DirectoryView.ready` before deciding anything. A
directory event is applied only from a sender that may write it
(:func:`processors.senders.directory_refusal`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any
from uuid import uuid4

from processors.directory import CapacityChange, Directory, apply_capacity, apply_directory
from processors.exceptions import ProcessorsError
from processors.router.ports import WRITER_HEADER
from processors.senders import directory_refusal, sender_of
from schemas.models import ProviderEvent
from streams.codec import Codec
from streams.exceptions import StreamsError, WrongEventType
from streams.logs import get_logger
from streams.replay import ReplayReader
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["DirectoryView"]

log = get_logger(__name__)


class DirectoryView:
    """The provider directory with its free places, rebuilt from Kafka at every start.

    ``ready`` is set once it has reached the end offsets it saw at start.
    """

    def __init__(self, settings: KafkaSettings, codec: Codec) -> None:
        """Nothing is read until :meth:`run`."""
        self.writer = uuid4().hex.encode()
        """This process's id: its own ledger records are applied locally already, at once.

        Replaying them as well would re-reserve a place released meanwhile
        until the release is replayed too; a restarted worker has a new id
        and so rebuilds everything from the ledger."""
        self.settings = settings
        self.codec = codec
        self.directory = Directory()
        self.pending: list[CapacityChange] = []
        """Ledger changes whose provider the directory does not know yet."""
        self.ready = asyncio.Event()
        topics = Topics.of(settings)
        self.providers_topic = topics.providers
        self.ledger_topic = topics.capacity_ledger

    def _apply_change(self, change: CapacityChange) -> None:
        """Apply a ledger change, or keep it until its provider's entry arrives.

        The two topics are read side by side, so a reservation can be seen
        before the registration of its provider; dropping it would let this
        worker offer that place again.
        """
        entry = self.directory.get(change.provider_id)
        if entry is None or change.category not in entry.places:
            self.pending.append(change)  # releases too: order per referral must hold
            return
        self.directory = apply_capacity(self.directory, [change])

    def _retry_pending(self) -> None:
        waiting, self.pending = self.pending, []
        for change in waiting:
            self._apply_change(change)

    def apply_local(self, changes: Iterable[CapacityChange]) -> None:
        """Apply this worker's own reservations at once (the ledger replay repeats them)."""
        self.directory = apply_capacity(self.directory, changes)

    async def run(self) -> None:
        """Replay, then follow, both topics until cancelled (:class:`ReplayReader`)."""
        reader = ReplayReader(
            self.settings,
            (self.providers_topic, self.ledger_topic),
            name="directory",
            apply=self._apply,
            on_caught_up=self._caught_up,
        )
        await reader.run()

    def _caught_up(self) -> None:
        self.ready.set()
        log.info("directory.ready", providers=len(self.directory.providers))

    def _apply(self, record: Any) -> None:
        try:
            if record.topic == self.ledger_topic:
                if (WRITER_HEADER, self.writer) in (record.headers or ()):
                    return
                self._apply_change(CapacityChange.model_validate_json(record.value))
                return
            decoded = self.codec.decode(
                record.value, record.headers, topic=record.topic, key=record.key
            )
            if not isinstance(decoded.event, ProviderEvent):
                raise WrongEventType(f"{decoded.event.event_type} is not a directory event")
            refused = directory_refusal(decoded.event, sender_of(decoded.envelope.source))
            if refused is not None:
                # Only the intake and the platform may write this topic (ACLs); a
                # record from anyone else is ignored, like an unreadable one.
                log.warning(
                    "directory.record_refused",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    ce_type=decoded.event.event_type,
                    provider_id=str(decoded.event.provider_id),
                    reason=refused[0].value,
                    detail=refused[1],
                )
                return
            self.directory = apply_directory(self.directory, decoded.event)
            self._retry_pending()
        except (StreamsError, ProcessorsError, ValueError) as exc:
            # Every worker reads this record; the directory agent of one
            # worker is not the place to dead-letter it. Log coordinates only.
            log.warning(
                "directory.record_skipped",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                error_class=type(exc).__name__,
            )
