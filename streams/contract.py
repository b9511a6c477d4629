"""Which event types may appear on which catalog topic, and what each record's key is.

Topic names and key kinds come from :mod:`streams.topics`. The codec refuses
to encode an event onto a topic that must not carry it, and dead-letters
such a record when decoding. Survivor-keyed topics are keyed by the survivor
pseudonym, so a survivor's events keep their order; provider-keyed topics
(the directory, the referral topics) by the provider id, so a forwarded
``referral.cancelled`` must name the provider holding the offer. A key is
the UUID's canonical text, so every client language's partitioner puts the
same survivor on the same partition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from uuid import UUID

from schemas.models import Event, ProviderCapacity, SurvivorEvent
from schemas.types import ServiceCategory
from streams.exceptions import UnknownTopicError
from streams.settings import KafkaSettings
from streams.topics import (
    AGENCY_EVENTS,
    DELIVERY_REPORTS,
    DIRECTORY_EVENTS,
    ESCALATION_EVENTS,
    OFFER_EVENTS,
    PARTY_KINDS,
    PROVIDER_ANSWERS,
    Topics,
    catalog,
)

__all__ = [
    "AGENCY_EVENTS",
    "DELIVERY_REPORTS",
    "DIRECTORY_EVENTS",
    "ESCALATION_EVENTS",
    "OFFER_EVENTS",
    "PROVIDER_ANSWERS",
    "Contract",
    "KeyKind",
    "TopicContract",
    "provider_of",
]


def provider_of(key: bytes | None) -> UUID | None:
    """The provider a record of a provider-keyed topic is keyed to; None for a key naming none."""
    if key is None:
        return None
    try:
        return UUID(key.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


class KeyKind(StrEnum):
    """What a topic is keyed by; the values are the catalog's ``TopicSpec.key``."""

    SURVIVOR = "survivor id"
    PROVIDER = "provider id"


@dataclass(frozen=True)
class TopicContract:
    """The events one topic may carry and how its records are keyed."""

    topic: str
    key: KeyKind
    event_types: frozenset[str]
    category: ServiceCategory | None = None
    """The service category of a referral topic; None elsewhere."""
    provider: UUID | None = None
    """The provider whose own offer topic this is; None elsewhere."""
    sender: str | None = None
    """The source of the party whose own inbound topic this is; None elsewhere."""


class Contract:
    """The topic contract of one namespace; build it once per codec or service."""

    def __init__(self, settings: KafkaSettings) -> None:
        specs = {spec.name: spec for spec in catalog(settings)}
        names = Topics.of(settings)
        topics: dict[str, TopicContract] = {}
        for name, event_types in (
            (names.intake, AGENCY_EVENTS),
            (names.provider_responses, PROVIDER_ANSWERS | DELIVERY_REPORTS),
            (names.providers, DIRECTORY_EVENTS),
            (names.escalations, ESCALATION_EVENTS),
        ):
            topics[name] = TopicContract(name, KeyKind(specs[name].key), event_types)
        for category in ServiceCategory:
            if category.topic_category is None:
                continue
            name = names.referral(category.topic_category)
            topics[name] = TopicContract(name, KeyKind(specs[name].key), OFFER_EVENTS, category)
        self._topics: Mapping[str, TopicContract] = MappingProxyType(topics)
        self._names = names
        self._offers_prefix = names.offers_prefix

    @property
    def topics(self) -> Mapping[str, TopicContract]:
        """Every topic that carries events of the contract, by name."""
        return self._topics

    def topic(self, name: str) -> TopicContract:
        """The contract of one topic; :class:`UnknownTopicError` for any other topic.

        Besides the catalog's topics, every provider's own offer topic
        (``offers.<provider id>.v1``, created by the offers relay).
        """
        try:
            return self._topics[name]
        except KeyError:
            pass
        provider = self._offers_owner(name)
        if provider is not None:
            return TopicContract(name, KeyKind.PROVIDER, OFFER_EVENTS, provider=provider)
        sender = self._names.party_of(name)
        if sender is not None:
            kind = sender.split("/")[1]
            return TopicContract(name, KeyKind.SURVIVOR, PARTY_KINDS[kind], sender=sender)
        raise UnknownTopicError(
            f"topic {name!r} carries no events of the contract; "
            f"known: {', '.join(sorted(self._topics))}, {self._offers_prefix}<provider id>.v1 "
            f"and {self._names.parties_prefix}<agencies|providers>.<id>.v1"
        )

    def _offers_owner(self, name: str) -> UUID | None:
        """The provider whose own offer topic ``name`` is, or None."""
        if not name.startswith(self._offers_prefix) or not name.endswith(".v1"):
            return None
        try:
            return UUID(name.removeprefix(self._offers_prefix).removesuffix(".v1"))
        except ValueError:
            return None

    def violation(self, topic: str, event: Event) -> str | None:
        """Why ``event`` must not be on ``topic`` (no field values: it goes into logs), or None."""
        contract = self.topic(topic)
        if event.event_type not in contract.event_types:
            allowed = ", ".join(sorted(contract.event_types))
            return f"{event.event_type} is not allowed on {topic} (allowed: {allowed})"
        if contract.category is not None:
            category = getattr(event, "category", None)
            if category is not contract.category:
                found = "no category" if category is None else f"category {category.value}"
                return (
                    f"{event.event_type} with {found} is not allowed on {topic}, "
                    f"the topic of category {contract.category.value}"
                )
        if (
            contract.provider is not None
            and getattr(event, "provider_id", None) != contract.provider
        ):
            return f"{event.event_type} for another provider is not allowed on {topic}"
        if self._key_id(contract, event) is None:
            return (
                f"{event.event_type} on {topic} must name its {contract.key.value}: "
                f"it is the topic's key"
            )
        return None

    def topics_for(self, event: Event) -> tuple[str, ...]:
        """Every topic this event may be published on (none, e.g., for an UNKNOWN category)."""
        return tuple(name for name in self._topics if self.violation(name, event) is None)

    def key_for(self, topic: str, event: Event) -> bytes:
        """The Kafka key of ``event`` on ``topic``: a UUID's canonical text, ASCII-encoded.

        :class:`ValueError` when the event has no id of the topic's key kind.
        """
        contract = self.topic(topic)
        key = self._key_id(contract, event)
        if key is None:
            raise ValueError(f"{event.event_type} has no {contract.key.value} for {topic}")
        if isinstance(event, ProviderCapacity) and contract.event_types == DIRECTORY_EVENTS:
            # The directory topic is compacted: under the bare provider id, a
            # capacity report would erase the provider's registration. Each
            # category's latest report keeps a key of its own instead.
            return f"{key}/{event.category.value}".encode("ascii")
        return str(key).encode("ascii")

    @staticmethod
    def _key_id(contract: TopicContract, event: Event) -> UUID | None:
        if contract.key is KeyKind.SURVIVOR:
            return event.survivor_id if isinstance(event, SurvivorEvent) else None
        provider_id = getattr(event, "provider_id", None)
        return provider_id if isinstance(provider_id, UUID) else None
