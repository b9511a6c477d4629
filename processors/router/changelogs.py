"""The changelog topics of the router's tables, declared before Faust starts.

Faust creates missing changelogs itself, at start, while its consumer is
already joining: with three tables, its metadata snapshot was seen holding
a changelog still being created, and every first write to that table
failed with ``PartitionsMismatch``. Created beforehand, they are complete
when Faust looks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.exceptions import StreamsError
from streams.provisioning import provision
from streams.settings import KafkaSettings, Profile
from streams.topics import CleanupPolicy, TopicSpec

__all__ = ["changelog_specs", "declare_changelogs"]

_KEYS = {"cases": "survivor id", "ladder": "survivor id", "deadlines": "deadline key"}


def changelog_specs(tables: Mapping[str, Any], settings: KafkaSettings) -> tuple[TopicSpec, ...]:
    """The changelog topics of the router's tables (name → Faust table), as the catalog would.

    A Faust table names its changelog; the router names what its key is.
    """
    production = settings.profile is Profile.PRODUCTION
    return tuple(
        TopicSpec(
            name=table.changelog_topic.get_topic_name(),
            key=_KEYS[name],
            description=f"Faust changelog of the router's {name} table.",
            partitions=settings.partitions,
            replication_factor=3 if production else 1,
            min_insync_replicas=2 if production else 1,
            cleanup_policy=CleanupPolicy.COMPACT,
            retention_ms=-1,
        )
        for name, table in tables.items()
    )


def declare_changelogs(tables: Mapping[str, Any], settings: KafkaSettings) -> tuple[str, ...]:
    """Create the tables' changelog topics; refuse a mismatched one. The names created.

    A changelog whose partitions differ from the intake topic's can never
    work (a table partition is an intake partition), so that is an error
    naming the topic.
    """
    the_plan, created = provision(settings, changelog_specs(tables, settings))
    wrong = [d for d in the_plan.drift if d.setting == "partitions"]
    if wrong:
        raise StreamsError(
            "; ".join(
                f"{d.topic} has {d.actual} partitions, the tables need {d.expected}: {d.remedy}"
                for d in wrong
            )
        )
    return created
