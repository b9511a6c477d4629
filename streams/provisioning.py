"""Idempotent topic provisioning: create what is missing, report drift, never delete.

:func:`plan` is pure and unit-tested; :func:`provision` and :func:`describe`
are the thin edge over the admin client. An existing topic is never deleted
or recreated, whatever its drift: it may hold survivors' events, and Kafka
is the source of truth. Drift is reported with the remedy for a person to apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

from streams.clients import admin_client
from streams.exceptions import ProvisioningError
from streams.settings import KafkaSettings
from streams.topics import TopicSpec, catalog

__all__ = ["Drift", "ObservedTopic", "Plan", "describe", "plan", "provision"]


@dataclass(frozen=True)
class ObservedTopic:
    """A topic as the cluster reports it."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


@dataclass(frozen=True)
class Drift:
    """One difference between the catalog and an existing topic."""

    topic: str
    setting: str
    expected: str
    actual: str
    remedy: str


@dataclass(frozen=True)
class Plan:
    """What provisioning does: topics to create, topics in order, drift to report."""

    create: tuple[TopicSpec, ...]
    in_order: tuple[str, ...]
    drift: tuple[Drift, ...]


def plan(desired: Sequence[TopicSpec], observed: Mapping[str, ObservedTopic]) -> Plan:
    """Compare the catalog with the cluster; pure, so it can be tested without a broker."""
    create: list[TopicSpec] = []
    in_order: list[str] = []
    drift: list[Drift] = []
    for spec in desired:
        actual = observed.get(spec.name)
        if actual is None:
            create.append(spec)
            continue
        found = _drift(spec, actual)
        if found:
            drift.extend(found)
        else:
            in_order.append(spec.name)
    return Plan(tuple(create), tuple(in_order), tuple(drift))


def _drift(spec: TopicSpec, actual: ObservedTopic) -> list[Drift]:
    checks = [
        (
            "partitions",
            str(spec.partitions),
            str(actual.partitions),
            "left as is: changing the partition count moves keys to other partitions and "
            "breaks per-survivor order and co-partitioning; migrate to a new topic version",
        ),
        (
            "replication factor",
            str(spec.replication_factor),
            str(actual.replication_factor),
            "reassign replicas with kafka-reassign-partitions (check SAFEPASSAGE_PROFILE)",
        ),
        *(
            (
                key,
                expected,
                actual.config.get(key, "(unset)"),
                f"kafka-configs --alter --entity-type topics --entity-name {spec.name} "
                f"--add-config {key}={expected}",
            )
            for key, expected in spec.config().items()
        ),
    ]
    return [Drift(spec.name, *check) for check in checks if check[1] != check[2]]


def describe(
    settings: KafkaSettings,
    names: Iterable[str] | None = None,
    *,
    config_keys: Iterable[str] | None = None,
    timeout_s: float = 15.0,
) -> dict[str, ObservedTopic]:
    """Partitions, replication factor and configs of existing topics.

    With ``names`` None, every topic in the settings' namespace is described.
    """
    admin = admin_client(settings)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise ProvisioningError(
            f"Kafka at {settings.bootstrap_servers} did not answer a metadata request ({exc}). "
            f"Is the broker running? `safepassage kafka start` starts the local one."
        ) from exc
    wanted = (
        set(names)
        if names is not None
        else {t for t in metadata.topics if t.startswith(settings.topic_namespace + ".")}
    )
    present = sorted(t for t in wanted if t in metadata.topics)
    if not present:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in present]
    configs: dict[str, dict[str, str]] = {}
    keys = set(config_keys) if config_keys is not None else None
    for resource, future in admin.describe_configs(resources, request_timeout=timeout_s).items():
        entries: dict[str, Any] = future.result()
        configs[resource.name] = {
            k: str(e.value) for k, e in entries.items() if keys is None or k in keys
        }
    out: dict[str, ObservedTopic] = {}
    for name in present:
        partitions = metadata.topics[name].partitions
        replication = max((len(p.replicas) for p in partitions.values()), default=0)
        out[name] = ObservedTopic(name, len(partitions), replication, configs.get(name, {}))
    return out


def provision(
    settings: KafkaSettings,
    desired: Sequence[TopicSpec] | None = None,
    *,
    timeout_s: float = 30.0,
) -> tuple[Plan, tuple[str, ...]]:
    """Create missing catalog topics; return the plan and the names actually created.

    Safe to run any number of times and from several processes at once: a
    topic that another process created meanwhile counts as present.
    """
    desired = tuple(desired if desired is not None else catalog(settings))
    keys = {key for spec in desired for key in spec.config()}
    observed = describe(settings, [s.name for s in desired], config_keys=keys, timeout_s=timeout_s)
    the_plan = plan(desired, observed)
    if not the_plan.create:
        return the_plan, ()
    admin = admin_client(settings)
    new_topics = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            config=spec.config(),
        )
        for spec in the_plan.create
    ]
    created: list[str] = []
    errors: list[str] = []
    futures = admin.create_topics(
        new_topics, request_timeout=timeout_s, operation_timeout=timeout_s
    )
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if error.code() == KafkaError.INVALID_REPLICATION_FACTOR:
                errors.append(
                    f"{name}: {error.str()} (the {settings.profile.value} profile asks for a "
                    f"replication factor the cluster cannot give; use SAFEPASSAGE_PROFILE=dev "
                    f"on a single broker)"
                )
            else:
                errors.append(f"{name}: {error.str()}")
    if errors:
        raise ProvisioningError("Could not create topics:\n  " + "\n  ".join(errors))
    return the_plan, tuple(sorted(created))
