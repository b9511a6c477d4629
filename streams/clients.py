"""confluent-kafka client configurations that keep SafePassage's guarantees.

* Producers are idempotent with ``acks=all``: a record acknowledged is on
  every in-sync replica, and retries never duplicate or reorder it.
* Producers use the ``murmur2_random`` partitioner, the one of the Java
  client and of aiokafka (which Faust uses). librdkafka's default
  (``consistent_random``, CRC32) would put the same survivor on another
  partition than the stream processors expect, breaking per-survivor order
  and co-partitioning.
* Consumers commit only what was processed (auto-commit off) and read only
  committed data.
"""

import logging
from typing import Any

from confluent_kafka.admin import AdminClient

from streams.settings import KafkaSettings

_admin_log = logging.getLogger("streams.librdkafka.admin")
_admin_log.addHandler(logging.NullHandler())
# One-shot admin calls report failure through their exceptions; librdkafka's
# own connection-retry lines would only repeat them many times a second.
_admin_log.propagate = False

PARTITIONER = "murmur2_random"


def producer_config(settings: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """Configuration for a durable, ordered, idempotent producer."""
    return {
        **settings.client_config(),
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": PARTITIONER,
        "compression.type": "zstd",
        "linger.ms": 5,
        **overrides,
    }


def consumer_config(settings: KafkaSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Configuration for an at-least-once consumer that commits explicitly."""
    return {
        **settings.client_config(),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        **overrides,
    }


def admin_client(settings: KafkaSettings) -> AdminClient:
    """An admin client (topic provisioning) whose failures surface as exceptions only."""
    return AdminClient(settings.client_config(), logger=_admin_log)
