"""The offers relay: every offer and cancellation copied onto the addressed provider's own topic.

The router writes offers on the shared per-category topics
(``referrals.<category>.v1``), keyed by provider id, and only platform
components may read those. A provider that uses Kafka directly reads one
topic only, ``offers.<its id>.v1``, which the broker lets no other
provider read (a prefixed ACL, ``streams/acl_matrix.yaml``): a filter in the
client would be no boundary at all. The relay (:mod:`connectors.relay`)
copies each record onto that topic, creating it on the provider's first
offer. A record whose key names no provider is dead-lettered.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from confluent_kafka import Message

from connectors.exceptions import ConnectorsError
from connectors.relay import Relay, copy_of
from streams.contract import provider_of
from streams.logs import get_logger
from streams.offsets import Partition
from streams.producing import OutRecord
from streams.provisioning import provision
from streams.settings import KafkaSettings
from streams.topics import Topics, offers_spec

__all__ = ["OffersRelay", "UnaddressedRecordError"]

log = get_logger(__name__)


class UnaddressedRecordError(ConnectorsError):
    """A record on a referral topic whose key is not a provider id: it cannot be relayed."""


class OffersRelay(Relay):
    """Reads every referral topic; ``group_id`` defaults to ``<ns>-offers-relay`` (the ACL's)."""

    name = "offers_relay"
    service = "offers-relay"

    def __init__(
        self, kafka: KafkaSettings, *, group_id: str | None = None, poll_interval_s: float = 0.2
    ) -> None:
        super().__init__(
            kafka,
            group_id=group_id or f"{kafka.topic_namespace}-offers-relay",
            sources=Topics.of(kafka).all_referrals,
            poll_interval_s=poll_interval_s,
        )
        self._created: set[str] = set()

    async def route(self, message: Message, where: Partition, offset: int) -> OutRecord:
        provider = provider_of(message.key())
        if provider is None:
            error = UnaddressedRecordError(
                f"the key of a record on {where.topic} is no provider id"
            )
            return self.dead_letter(message, where, offset, error)
        target = self._topics.offers(provider)
        if target not in self._created:
            await asyncio.to_thread(self._create_topic, provider)
        self.stats.relayed += 1
        return copy_of(message, target)

    def _create_topic(self, provider: UUID) -> None:
        """Create the provider's own offer topic (a no-op when it exists)."""
        _, created = provision(self._kafka, [offers_spec(self._kafka, str(provider))])
        self.stats.topics_created += len(created)
        if created:
            log.info("offers_relay.topic_created", provider_id=str(provider))
        self._created.add(self._topics.offers(provider))
