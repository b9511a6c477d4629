"""The topic catalog of DESIGN.md, as code, and the one place components ask for topic names.

Provisioning, the Faust app and the AsyncAPI document read :func:`catalog`;
producers and consumers ask :class:`Topics` for names, so a topic is
described and named in one place, next to the event types each topic carries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from streams.exceptions import UnknownTopicError
from streams.settings import KafkaSettings, Profile

__all__ = [
    "AGENCY_EVENTS",
    "CATEGORIES",
    "DELIVERY_REPORTS",
    "DIRECTORY_EVENTS",
    "ESCALATION_EVENTS",
    "OFFER_EVENTS",
    "PROVIDER_ANSWERS",
    "SHREDDING",
    "SHRED_BOUND_MS",
    "CleanupPolicy",
    "TopicSpec",
    "Topics",
    "catalog",
    "offers_spec",
    "party_spec",
    "referral_topic",
]

HOUR_MS = 60 * 60 * 1000
DAY_MS = 24 * HOUR_MS
FOREVER = -1

CATEGORIES: tuple[str, ...] = ("housing", "health", "legal-aid", "financial-support")
"""Service categories; each has its own referral topic."""

AGENCY_EVENTS = frozenset(
    {
        "survivor.identified",
        "consent.granted",
        "consent.withdrawn",
        "risk.assessed",
        "referral.requested",
        "referral.cancelled",
        "case.closed",
        "case.shared",
        "case.unshared",
        "survivor.erasure_requested",
    }
)
"""What agencies publish on ``intake.v1``."""

PROVIDER_ANSWERS = frozenset(
    {
        "referral.accepted",
        "referral.declined",
        "referral.started",
        "referral.completed",
        "referral.failed",
    }
)
"""What providers answer on ``provider-responses.v1``."""

DELIVERY_REPORTS = frozenset({"referral.undelivered"})
"""What the webhook delivery connector reports on ``provider-responses.v1`` (the router's
input, co-partitioned with intake). Not an agency's or provider's to publish: the intake
and the SDKs refuse it."""

DIRECTORY_EVENTS = frozenset({"provider.registered", "provider.updated", "provider.capacity"})
"""The compacted directory, ``providers.v1``."""

OFFER_EVENTS = frozenset({"referral.offered", "referral.cancelled"})
"""What the router writes on ``referrals.<category>.v1``, and the offers relay copies onto
the addressed provider's own ``offers.<provider id>.v1``."""

ESCALATION_EVENTS = frozenset({"referral.escalated"})
"""What operators watch on ``escalations.v1``."""


SHREDDING: Mapping[str, str] = MappingProxyType(
    {
        "segment.ms": str(HOUR_MS),  # the active segment is never compacted: roll it hourly
        "max.compaction.lag.ms": str(HOUR_MS),  # a superseded record is compacted within this
        "min.compaction.lag.ms": "0",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": str(HOUR_MS),  # how long the tombstone itself stays
    }
)
"""Compaction of the key topic, so that a shredded key cannot linger in the log."""

SHRED_BOUND_MS = 3 * HOUR_MS
"""How long a shredded key's record may stay in the key topic's log, at most, with
:data:`SHREDDING`: its segment rolls within an hour, is compacted within the next, and the
tombstone goes an hour after that (plus the log cleaner's own back-off of seconds)."""


class CleanupPolicy(StrEnum):
    """Kafka's cleanup.policy."""

    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True)
class TopicSpec:
    """Everything provisioning needs to know about one topic."""

    name: str
    key: str
    description: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int
    cleanup_policy: CleanupPolicy
    retention_ms: int
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        """Topic-level configs that provisioning sets and checks for drift."""
        return {
            "cleanup.policy": self.cleanup_policy.value,
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(self.min_insync_replicas),
            **self.extra_config,
        }


def referral_topic(settings: KafkaSettings, category: str) -> str:
    """Name of the referral topic of one service category (see :meth:`Topics.referral`)."""
    return Topics.of(settings).referral(category)


def catalog(settings: KafkaSettings) -> tuple[TopicSpec, ...]:
    """Every topic SafePassage uses, with the durability of the settings' profile.

    Survivor-keyed topics share one partition count so that a survivor's
    intake events and provider responses land on the same partition number
    (co-partitioning), which the stream processors rely on.
    """
    rf, min_isr = _durability(settings)
    ns = settings.topic_namespace
    survivor_partitions = settings.partitions

    def spec(
        suffix: str,
        key: str,
        description: str,
        *,
        cleanup: CleanupPolicy = CleanupPolicy.DELETE,
        retention_ms: int = FOREVER,
        partitions: int = survivor_partitions,
        extra: dict[str, str] | None = None,
    ) -> TopicSpec:
        return TopicSpec(
            name=f"{ns}.{suffix}",
            key=key,
            description=description,
            partitions=partitions,
            replication_factor=rf,
            min_insync_replicas=min_isr,
            cleanup_policy=cleanup,
            retention_ms=retention_ms,
            extra_config=extra or {},
        )

    compacted = {"min.cleanable.dirty.ratio": "0.1", "delete.retention.ms": str(DAY_MS)}
    topics = [
        spec(
            "intake.v1",
            "survivor id",
            "Everything agencies publish: identification, consent, risk, referral requests, "
            "case closure. The source of truth; personal data only in sealed fields.",
        ),
        spec(
            "provider-responses.v1",
            "survivor id",
            "Providers' answers to offers, and the webhook connector's reports of offers and "
            "cancellations it could not deliver; co-partitioned with intake.",
        ),
        spec(
            "providers.v1",
            "provider id",
            "Compacted provider directory: registrations and updates keyed by provider id, "
            "capacity reports by provider id/CATEGORY so compaction keeps both.",
            cleanup=CleanupPolicy.COMPACT,
            partitions=3,
            extra=compacted,
        ),
        *(
            spec(
                f"referrals.{category}.v1",
                "provider id",
                f"Offers and cancellations addressed to {category} providers.",
                partitions=3,
            )
            for category in CATEGORIES
        ),
        spec(
            "escalations.v1",
            "survivor id",
            "Escalations that operators and coordinators watch.",
            retention_ms=365 * DAY_MS,
        ),
        spec(
            "case-status.v1",
            "survivor id",
            "Compacted live status per survivor; a tombstone on erasure.",
            cleanup=CleanupPolicy.COMPACT,
            extra=compacted,
        ),
        spec(
            "audit.v1",
            "survivor id",
            "Routing decisions and status reads, for accountability.",
        ),
        spec(
            "capacity-ledger.v1",
            "provider id",
            "Internal: places reserved and released by the router, per referral (JSON); every "
            "worker replays it to know each provider's free places.",
            partitions=3,
        ),
        spec(
            "escalation-ticks.v1",
            "tick",
            "Internal: clock ticks of the escalation ladder (JSON instant), one per partition "
            "and interval; co-partitioned with intake so the owner of a partition ticks it.",
            retention_ms=DAY_MS,
        ),
        spec(
            "survivor-keys.v1",
            "survivor id",
            "Internal: each survivor's data key, wrapped by a key-encryption key (JSON); a "
            "tombstone shreds it. Compaction is bounded (SHRED_BOUND_MS) so a shredded key "
            "leaves the log within hours; read and written by the intake's key service only.",
            cleanup=CleanupPolicy.COMPACT,
            extra=dict(SHREDDING),
        ),
        spec(
            "deadletter.v1",
            "original key",
            "Records that could not be processed, with error headers naming the reason.",
            retention_ms=90 * DAY_MS,
        ),
    ]
    return tuple(topics)


def _durability(settings: KafkaSettings) -> tuple[int, int]:
    """Replication factor and min.insync.replicas of the settings' profile."""
    production = settings.profile is Profile.PRODUCTION
    return (3, 2) if production else (1, 1)


def offers_spec(settings: KafkaSettings, provider_id: str) -> TopicSpec:
    """One provider's own offer topic, created by the offers relay on the first offer.

    One topic per provider, so the broker itself keeps a provider's offers from
    every other provider: its principal may read only topics prefixed
    ``<ns>.offers.<its id>.`` (``streams/acl_matrix.yaml``). One partition, as
    every record is keyed by the provider's id.
    """
    rf, min_isr = _durability(settings)
    return TopicSpec(
        name=Topics.of(settings).offers(provider_id),
        key="provider id",
        description=f"Offers and cancellations addressed to provider {provider_id}.",
        partitions=1,
        replication_factor=rf,
        min_insync_replicas=min_isr,
        cleanup_policy=CleanupPolicy.DELETE,
        retention_ms=FOREVER,
    )


PARTY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
"""An agency or provider id that can name a topic of its own: no dot, so that no party's
topic prefix (``...<id>.``) is also the prefix of another party's topics."""

PARTY_KINDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {"agencies": AGENCY_EVENTS, "providers": PROVIDER_ANSWERS}
)
"""The source roots of parties that may publish on Kafka, and what each publishes."""


def party_spec(settings: KafkaSettings, source: str) -> TopicSpec:
    """The topic on which the party publishing under ``source`` writes Kafka itself.

    One topic per agency or provider, which only that party's principal may
    write (``streams/acl_matrix.yaml``): the topic names the sender, so the
    inbound relay learns who sent a record from something the sender cannot
    forge, checks the record against it and republishes it onto the shared
    inbound topics. Survivor-keyed, with the survivor topics' partition count.
    """
    rf, min_isr = _durability(settings)
    return TopicSpec(
        name=Topics.of(settings).from_party(source),
        key="survivor id",
        description=f"What {source} publishes itself, for the inbound relay to check.",
        partitions=settings.partitions,
        replication_factor=rf,
        min_insync_replicas=min_isr,
        cleanup_policy=CleanupPolicy.DELETE,
        retention_ms=7 * DAY_MS,
    )


@dataclass(frozen=True)
class Topics:
    """Every topic name of one namespace, taken from :func:`catalog`.

    Ask it instead of formatting ``f"{namespace}.xxx.v1"``: a renamed or
    re-versioned topic then changes in the catalog only.
    """

    intake: str
    provider_responses: str
    providers: str
    referrals: Mapping[str, str]
    """Referral topic per service category (``housing``, ``legal-aid``, ...)."""
    escalations: str
    case_status: str
    audit: str
    capacity_ledger: str
    escalation_ticks: str
    survivor_keys: str
    deadletter: str
    offers_prefix: str
    """What every provider's own offer topic starts with (see :func:`offers_spec`)."""
    parties_prefix: str
    """What every party's own inbound topic starts with (see :func:`party_spec`)."""

    @classmethod
    def of(cls, settings: KafkaSettings) -> Topics:
        """The names of the catalog of ``settings`` (its namespace)."""
        prefix = f"{settings.topic_namespace}."
        names = {spec.name.removeprefix(prefix): spec.name for spec in catalog(settings)}
        return cls(
            intake=names["intake.v1"],
            provider_responses=names["provider-responses.v1"],
            providers=names["providers.v1"],
            referrals=MappingProxyType(
                {category: names[f"referrals.{category}.v1"] for category in CATEGORIES}
            ),
            escalations=names["escalations.v1"],
            case_status=names["case-status.v1"],
            audit=names["audit.v1"],
            capacity_ledger=names["capacity-ledger.v1"],
            escalation_ticks=names["escalation-ticks.v1"],
            survivor_keys=names["survivor-keys.v1"],
            deadletter=names["deadletter.v1"],
            offers_prefix=f"{prefix}offers.",
            parties_prefix=f"{prefix}from.",
        )

    def referral(self, category: str) -> str:
        """The referral topic of one service category; :class:`ValueError` for an unknown one."""
        try:
            return self.referrals[category]
        except KeyError:
            raise ValueError(
                f"unknown service category {category!r}; known: {', '.join(CATEGORIES)}"
            ) from None

    def offers(self, provider_id: object) -> str:
        """The own offer topic of one provider (see :func:`offers_spec`)."""
        return f"{self.offers_prefix}{provider_id}.v1"

    def from_party(self, source: str) -> str:
        """The own inbound topic of the party publishing under ``source``.

        ``/agencies/<id>`` or ``/providers/<id>`` with a topic-safe id
        (:data:`PARTY_ID`); :class:`UnknownTopicError` for anything else.
        """
        parts = source.split("/")
        if len(parts) != 3 or parts[0] or parts[1] not in PARTY_KINDS:
            raise UnknownTopicError(
                f"only an agency or a provider publishes on a topic of its own, not {source!r}"
            )
        if not PARTY_ID.fullmatch(parts[2]):
            raise UnknownTopicError(
                f"the id in {source!r} cannot name a topic (letters, digits and '-' only, "
                f"at most 64); publish through the HTTP intake instead"
            )
        return f"{self.parties_prefix}{parts[1]}.{parts[2]}.v1"

    def party_of(self, topic: str) -> str | None:
        """The source of the party whose own inbound topic ``topic`` is, or None."""
        if not topic.startswith(self.parties_prefix) or not topic.endswith(".v1"):
            return None
        kind, _, party = topic.removeprefix(self.parties_prefix).removesuffix(".v1").partition(".")
        if kind not in PARTY_KINDS or not PARTY_ID.fullmatch(party):
            return None
        return f"/{kind}/{party}"

    @property
    def all_referrals(self) -> tuple[str, ...]:
        """Every referral topic, in the order of :data:`CATEGORIES`."""
        return tuple(self.referrals[category] for category in CATEGORIES)

    @property
    def inbound_by_type(self) -> Mapping[str, str]:
        """The inbound rule as a table: event type -> the topic it is published on."""
        return MappingProxyType(
            {
                **dict.fromkeys(AGENCY_EVENTS, self.intake),
                **dict.fromkeys(PROVIDER_ANSWERS, self.provider_responses),
            }
        )

    def inbound(self, event_type: str) -> str:
        """The topic an event of ``event_type`` enters the platform on (intake and SDKs).

        Anything but agency events and provider answers is the platform's own
        output, which no agency or provider publishes: :class:`UnknownTopicError`.
        """
        try:
            return self.inbound_by_type[event_type]
        except KeyError:
            raise UnknownTopicError(
                f"{event_type} is not something an agency or provider may publish"
            ) from None
