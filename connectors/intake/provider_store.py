"""The intake's read model of the provider directory: its own copy of ``providers.v1``.

Like the status store (:mod:`connectors.intake.status`), a
:class:`~streams.followed.FollowedCopy`: the compacted topic replayed into
memory and followed, served once caught up with the end offsets seen at
start. A record is taken only from a sender that may write it, by the
router's own rule (:func:`processors.senders.directory_refusal`), so the
intake shows the directory the router routes on. It also remembers how far
it has read each partition, so a write can wait until its own record is
visible here before it is answered (read your writes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from processors.senders import directory_refusal, sender_of
from schemas.models import ProviderCapacity, ProviderEvent, ProviderRegistered, ProviderUpdated
from schemas.types import ServiceCategory
from streams.codec import Codec
from streams.exceptions import StreamsError
from streams.followed import FollowedCopy
from streams.logs import get_logger
from streams.producing import Delivery
from streams.replay import ReplayReader
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["ProviderRecord", "ProviderStore", "Providers", "ProvidersReader"]

_log = get_logger("connectors.intake")


@dataclass
class ProviderRecord:
    """What the directory says of one provider: its entry and its latest capacity reports."""

    provider_id: UUID
    entry: ProviderRegistered | ProviderUpdated | None = None
    """The latest registration or update (None while only capacity reports were read)."""
    capacities: dict[ServiceCategory, ProviderCapacity] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass
class Providers:
    """The copy: every provider by id, and the next offset to read per partition."""

    records: dict[UUID, ProviderRecord] = field(default_factory=dict)
    positions: dict[int, int] = field(default_factory=dict)

    def listed(self) -> list[ProviderRecord]:
        """The registered providers, by id."""
        return sorted(
            (r for r in self.records.values() if r.entry is not None),
            key=lambda r: str(r.provider_id),
        )


class ProvidersReader(Protocol):
    """What the directory routes need of the read model (:class:`ProviderStore`)."""

    @property
    def ready(self) -> bool: ...

    @property
    def served(self) -> Providers: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def wait_visible(self, deliveries: Iterable[Delivery], timeout_s: float) -> bool: ...


class ProviderStore(FollowedCopy[Providers]):
    """The directory as the router sees it, from ``providers.v1`` (:class:`FollowedCopy`).

    Memory: one entry (with its kept HSDS document) and a few capacity
    reports per provider.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        codec: Codec,
        *,
        retry_s: Callable[[int], float] = lambda failures: min(2.0**failures, 30.0),
        reader: Callable[..., ReplayReader] = ReplayReader,
    ) -> None:
        self._codec = codec
        super().__init__(
            kafka,
            Topics.of(kafka).providers,
            name="provider-store",
            empty=Providers,
            apply=self._apply,
            retry_s=retry_s,
            reader=reader,
        )

    def get(self, provider_id: UUID) -> ProviderRecord | None:
        """A registered provider's record, or None."""
        record = self.served.records.get(provider_id)
        return record if record is not None and record.entry is not None else None

    async def wait_visible(self, deliveries: Iterable[Delivery], timeout_s: float) -> bool:
        """Wait until every delivered record of this topic was read here; False on timeout."""
        wanted = [(d.partition, d.offset) for d in deliveries if d.topic == self.topic]
        deadline = time.monotonic() + timeout_s
        while True:
            positions = self.served.positions
            if all(positions.get(partition, 0) > offset for partition, offset in wanted):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)

    def _apply(self, copy: Providers, record: Any) -> None:
        """Latest entry per provider, latest report per category; a bad record is skipped."""
        copy.positions[record.partition] = record.offset + 1
        if record.value is None:
            return  # a tombstone: nothing in the directory deletes yet
        try:
            decoded = self._codec.decode(
                bytes(record.value),
                list(record.headers or ()),
                topic=record.topic,
                key=None if record.key is None else bytes(record.key),
            )
        except StreamsError:
            self.skip(record, "record")
            return
        event = decoded.event
        if not isinstance(event, ProviderEvent):  # pragma: no cover - the codec's topic check
            self.skip(record, "type")
            return
        refused = directory_refusal(event, sender_of(decoded.envelope.source))
        if refused is not None:
            self.skip(record, f"sender ({refused[0].value})")
            return
        entry = copy.records.setdefault(event.provider_id, ProviderRecord(event.provider_id))
        if isinstance(event, ProviderCapacity):
            entry.capacities[event.category] = event
        elif isinstance(event, ProviderRegistered | ProviderUpdated):
            entry.entry = event
        entry.updated_at = event.occurred_at
