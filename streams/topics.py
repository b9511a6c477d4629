"""The topic catalog of DESIGN.md, as code.

Provisioning (:mod:`streams.provisioning`), the Faust app and the AsyncAPI
document all read topic names and settings from here, so a topic is
described in exactly one place.
"""

from dataclasses import dataclass, field
from enum import StrEnum

from streams.settings import KafkaSettings, Profile

__all__ = [
    "CATEGORIES",
    "CleanupPolicy",
    "TopicSpec",
    "catalog",
    "referral_topic",
]

DAY_MS = 24 * 60 * 60 * 1000
FOREVER = -1

CATEGORIES: tuple[str, ...] = ("housing", "health", "legal-aid", "financial-support")
"""Service categories; each has its own referral topic."""


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
    """Name of the referral topic of one service category."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown service category {category!r}; known: {', '.join(CATEGORIES)}")
    return f"{settings.topic_namespace}.referrals.{category}.v1"


def catalog(settings: KafkaSettings) -> tuple[TopicSpec, ...]:
    """Every topic SafePassage uses, with the durability of the settings' profile.

    Survivor-keyed topics share one partition count so that a survivor's
    intake events and provider responses land on the same partition number
    (co-partitioning), which the stream processors rely on.
    """
    production = settings.profile is Profile.PRODUCTION
    rf = 3 if production else 1
    min_isr = 2 if production else 1
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
            "Providers' answers to offers; co-partitioned with intake.",
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
            "deadletter.v1",
            "original key",
            "Records that could not be processed, with error headers naming the reason.",
            retention_ms=90 * DAY_MS,
        ),
    ]
    return tuple(topics)
