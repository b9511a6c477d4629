"""Clock ticks of the escalation ladder: records that say "it is now T" to one partition.

Faust allows table writes only while an agent processes a record, so time
arrives as records: a tick on partition *p* of ``escalation-ticks.v1``
(co-partitioned with intake) makes the owner of *p* escalate the deadlines
of *p* due at T, in order with that partition's events. With the ``wall``
clock every worker ticks its own partitions; with ``external`` only ticks
published from outside count (``safepassage escalations tick --at``, tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, ValidationError

from schemas.types import UtcDatetime
from streams.exceptions import StreamsError
from streams.producing import AckedProducer, OutRecord
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = [
    "TICK_KEY",
    "Tick",
    "TickError",
    "decode_tick",
    "encode_tick",
    "publish_ticks",
    "tick_topic",
]

TICK_KEY = b"tick"


class TickError(StreamsError):
    """A tick record that does not say what time it is."""


class Tick(BaseModel):
    """``{"now": "<ISO 8601 instant>"}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    now: UtcDatetime


def tick_topic(settings: KafkaSettings) -> str:
    """Name of the ticks topic of the settings' namespace."""
    return Topics.of(settings).escalation_ticks


def encode_tick(now: datetime) -> bytes:
    """The record value of a tick at ``now`` (aware datetime)."""
    return Tick(now=now).model_dump_json().encode()


def decode_tick(value: bytes | None) -> datetime:
    """The instant of a tick record; :class:`TickError` when it is not one."""
    if value is None:
        raise TickError("a tick record needs a value")
    try:
        return Tick.model_validate_json(value).now
    except ValidationError as exc:
        raise TickError(f"not a tick: {exc.errors()[0]['msg']}") from exc


def publish_ticks(
    settings: KafkaSettings, now: datetime, partitions: Iterable[int] | None = None
) -> int:
    """Publish a tick at ``now`` to each partition (all by default); how many were acked.

    :class:`StreamsError` when one was not.
    """
    targets = list(range(settings.partitions) if partitions is None else partitions)
    topic = tick_topic(settings)
    value = encode_tick(now)
    producer = AckedProducer(settings, name="ticks")
    try:
        outcome = producer.send_in_key_order(
            [OutRecord(topic, TICK_KEY, value, partition=p) for p in targets], timeout_s=30.0
        )
    finally:
        producer.close(5.0)
    if outcome.left:
        reasons = sorted({error.name() for error in outcome.errors.values()})
        raise StreamsError(f"ticks not published to {topic}: " + "; ".join(reasons))
    return len(targets)
