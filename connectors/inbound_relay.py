"""The inbound relay: what a party writes on Kafka itself, checked, then moved onto intake.

The router learns who sent a record from its CloudEvents source, so only the
platform may write the shared inbound topics (``intake.v1``,
``provider-responses.v1``). An agency or provider that uses Kafka writes a
topic of its own instead, ``from.agencies.<id>.v1`` or
``from.providers.<id>.v1``, which the broker lets no one else write (a
prefixed WRITE ACL, ``streams/acl_matrix.yaml``): the topic names the sender
and the sender cannot forge it. This relay, running as the ``intake``
principal, holds each record to the HTTP intake's authorisation rules for
that party (:func:`connectors.auth.authorize_source` and
:func:`~connectors.auth.authorize_event`: its own source, its own event types,
its own agency or provider id), to the topic's contract (the codec) and,
like the intake, to sealing: a sealed value must open for the platform under
the survivor's data key (:meth:`KeyDirectory.unopenable`; without a key
directory every sealed value is refused). It copies the record byte for byte
onto its inbound topic. A record that breaks a rule is dead-lettered with the
reason and never reaches the router.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import TYPE_CHECKING
from uuid import UUID

from confluent_kafka import Message

from connectors.auth import Principal, Role, authorize_event, authorize_source
from connectors.exceptions import ForbiddenError, SealedValueError
from connectors.relay import Relay
from schemas.models import Event
from schemas.types import Sealed
from streams.cloudevents import PARTY_ID_MESSAGE, REQUIRED_HEADERS, is_party_id
from streams.codec import Codec, Decoded
from streams.exceptions import DecodeError, InvalidHeader, RegistryUnavailableError
from streams.logs import get_logger
from streams.offsets import Partition
from streams.producing import OutRecord
from streams.settings import KafkaSettings
from streams.topics import Topics
from streams.tracing import TRACEPARENT

if TYPE_CHECKING:  # the intake package imports this module (its relay command)
    from connectors.intake.keys import KeyDirectory

__all__ = ["METADATA_REFRESH_MS", "InboundRelay", "party_principal"]

SOURCE = "/safepassage/inbound-relay"

METADATA_REFRESH_MS = 10_000
"""How soon the relay notices a new party's topic (librdkafka's default: 5 minutes)."""

REGISTRY_RETRY_S = 1.0
"""Pause before decoding again while the schema registry does not answer."""

log = get_logger(__name__)

_ROLES = {"agencies": Role.AGENCY, "providers": Role.PROVIDER}


def party_principal(sender: str) -> Principal:
    """The principal a party topic's records are held to, from the source the topic names.

    :class:`ForbiddenError` for a provider topic whose id is not a provider id.
    """
    _, kind, party = sender.split("/")
    role = _ROLES[kind]
    if role is Role.PROVIDER:
        try:
            provider_id = UUID(party)
        except ValueError:
            raise ForbiddenError(f"{sender} names no provider id") from None
        return Principal(f"kafka{sender}", role, "kafka", provider_id=provider_id)
    return Principal(f"kafka{sender}", role, "kafka", agency_id=party)


class InboundRelay(Relay):
    """Reads every party's own topic (a pattern subscription); group ``<ns>-inbound-relay``."""

    name = "inbound_relay"
    service = "inbound-relay"

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        group_id: str | None = None,
        poll_interval_s: float = 0.2,
        codec: Codec | None = None,
        directory: KeyDirectory | None = None,
    ) -> None:
        topics = Topics.of(kafka)
        self._directory = directory
        super().__init__(
            kafka,
            group_id=group_id or f"{kafka.topic_namespace}-inbound-relay",
            sources=[f"^{re.escape(topics.parties_prefix)}.*"],
            poll_interval_s=poll_interval_s,
            consumer_overrides={"topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS},
        )
        self._codec = codec or Codec(kafka, source=SOURCE)

    async def route(self, message: Message, where: Partition, offset: int) -> OutRecord:
        sender = self._topics.party_of(where.topic)
        try:
            if sender is None:
                raise ForbiddenError(f"{where.topic} is no party's topic")
            principal = party_principal(sender)
            decoded = await self._decode(message, where)
            if not is_party_id(decoded.envelope.id):
                raise InvalidHeader(f"ce_id {PARTY_ID_MESSAGE}")
            authorize_source(principal, decoded.envelope.source)
            authorize_event(principal, decoded.event)
            self._check_sealed(decoded.event)
        except (ForbiddenError, DecodeError, SealedValueError) as exc:
            return self.dead_letter(message, where, offset, exc)
        self.stats.relayed += 1
        return checked_copy(message, self._topics.inbound(decoded.event.event_type), decoded)

    def _check_sealed(self, event: Event) -> None:
        if not any(isinstance(value, Sealed) for _, value in event):
            return
        if self._directory is None:
            raise SealedValueError("this relay has no key directory: sealed values are refused")
        errors = self._directory.unopenable(event, "")
        if errors:
            where = ", ".join(error.location for error in errors)
            raise SealedValueError(f"sealed value(s) that do not open for the platform: {where}")

    async def run(self, stop: asyncio.Event) -> None:
        """Relay once the key directory caught up (a key made a moment ago must be known)."""
        if self._directory is None:
            await super().run(stop)
            return
        await self._directory.start()
        try:
            while not self._directory.ready and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.1)
            if not stop.is_set():
                await super().run(stop)
        finally:
            await self._directory.close()

    async def _decode(self, message: Message, where: Partition) -> Decoded:
        """The decoded record; a schema registry outage is waited out, not the record's fault."""
        while True:
            try:
                return self._codec.decode(
                    message.value(), message.headers(), topic=where.topic, key=message.key()
                )
            except RegistryUnavailableError:
                log.warning(
                    "inbound_relay.registry_unavailable",
                    topic=where.topic,
                    partition=where.partition,
                )
                await asyncio.sleep(REGISTRY_RETRY_S)


def checked_copy(message: Message, topic: str, decoded: Decoded) -> OutRecord:
    """Key and value byte for byte; of the headers only those the relay checked.

    The CloudEvents headers were checked by the decode, and a ``traceparent``
    only in its W3C form: any other header a party wrote is text nobody
    looked at, and unsealed text must not reach the platform's topics.
    """
    raw = message.headers()  # a consumed record's are a list (or None)
    headers = [(n, v) for n, v in (raw if isinstance(raw, list) else ()) if n in REQUIRED_HEADERS]
    if decoded.traceparent is not None:
        headers.append((TRACEPARENT, decoded.traceparent.encode()))
    return OutRecord(topic, message.key(), message.value(), headers)
