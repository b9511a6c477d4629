"""The provider SDK: receive the offers made to one provider, answer them.

:meth:`ProviderClient.offers` reads the provider's own offer topic
(``offers.<provider id>.v1``, filled by the offers relay, ``safepassage
deliver kafka``; the broker lets no other provider read it) in the
provider's own consumer group and yields its offers and cancellations, each
once (copies are recognised as in :mod:`connectors.sdk.offers`). Delivery is at
least once, acknowledged by the
caller: an offset is committed only once its item was handled (the next item
asked for with ``auto_ack``, or :meth:`ProviderClient.ack`), per partition up
to the oldest item not yet handled, so acknowledging out of order never skips
one. Handlers must therefore be idempotent, and the answers are: their
CloudEvents ids derive from the offer. See ``docs/sdk.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Hashable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from confluent_kafka import KafkaError, Message

from connectors.exceptions import SdkConsumeError, SdkNotAddressedError, SdkValidationError
from connectors.sdk.disclosures import Disclosure, DisclosureClient
from connectors.sdk.events import RememberedTimes, build_event, utc_now
from connectors.sdk.http_transport import HttpTransport
from connectors.sdk.kafka_transport import LIBRDKAFKA_LOG, KafkaTransport
from connectors.sdk.offers import (
    DEFAULT_DEDUPE_CAPACITY,
    Deduplicator,
    Incoming,
    OfferRef,
    ProviderStats,
    answer_id,
    dedupe_keys,
)
from connectors.sdk.transport import Closing, Transport
from schemas.models import (
    ReferralAccepted,
    ReferralCancelled,
    ReferralCompleted,
    ReferralDeclined,
    ReferralFailed,
    ReferralOffered,
    ReferralStarted,
)
from schemas.types import DeclineReason, FailureReason, ReferralOutcome
from streams.codec import Codec, Decoded
from streams.consumer_loop import ConsumerLike, ConsumerLoop
from streams.exceptions import DecodeError, RegistryUnavailableError
from streams.logs import get_logger
from streams.offsets import OffsetTracker, Partition
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["ProviderClient"]

log = get_logger(__name__)

_ANSWER = ReferralAccepted | ReferralDeclined | ReferralStarted | ReferralCompleted | ReferralFailed
_NOT_AUTHORISED = frozenset(
    {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}
)
"""Consumer errors that waiting does not cure: the principal lacks an ACL."""

OfferLike = Incoming | ReferralOffered | OfferRef
"""What names an offer to answer: the yielded item, its event or its saved reference."""


class ProviderClient(Closing):
    """One provider's connection: its offers in, its answers out.

    Not thread-safe on the consuming side (confluent-kafka consumers are
    not): iterate :meth:`offers` in one thread. Answers may be sent from
    any thread. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        provider_id: UUID | str,
        settings: KafkaSettings,
        *,
        group_id: str | None = None,
        transport: Transport | None = None,
        source: str | None = None,
        codec: Codec | None = None,
        auto_ack: bool = True,
        dedupe_capacity: int = DEFAULT_DEDUPE_CAPACITY,
        poll_interval_s: float = 0.5,
        commit_interval_s: float = 5.0,
        clock: Callable[[], datetime] = utc_now,
        consumer_overrides: Mapping[str, Any] | None = None,
        consumer: ConsumerLike | None = None,
        disclosures: DisclosureClient | tuple[str, str] | None = None,
    ) -> None:
        """Configure the client; nothing connects until :meth:`offers` or the first answer.

        ``group_id`` defaults to ``<client_id>-provider-<provider_id>``: the
        provider's own group, whose instances share the work. ``transport``
        defaults to a :class:`KafkaTransport` on ``settings`` (an
        :class:`~connectors.sdk.http_transport.HttpTransport` answers through the
        intake API). ``consumer`` replaces the confluent-kafka consumer
        (tests); the client subscribes it and closes it. ``disclosures`` fetches
        the personal data of offers (:meth:`disclosure`): a
        :class:`~connectors.sdk.disclosures.DisclosureClient`, or ``(intake_url,
        provider_api_key)``; by default the HTTP transport's intake, if answers go there.
        """
        try:
            self.provider_id = provider_id if isinstance(provider_id, UUID) else UUID(provider_id)
        except ValueError:
            raise SdkValidationError("provider_id must be a UUID") from None
        self.settings = settings
        self.topics = (Topics.of(settings).offers(self.provider_id),)
        self.group_id = group_id or f"{settings.client_id}-provider-{self.provider_id}"
        self.source = source or f"/providers/{self.provider_id}"
        self.auto_ack = auto_ack
        self.poll_interval_s = poll_interval_s
        self.commit_interval_s = commit_interval_s
        self.stats = ProviderStats()
        self._codec = codec or Codec(settings, source=self.source)
        self._transport = transport
        self._owns_transport = transport is None
        self._clock = clock
        self._times = RememberedTimes()
        self._dedupe = Deduplicator(dedupe_capacity)
        self._held: dict[tuple[Partition, int], tuple[tuple[Hashable, ...], int]] = {}
        """De-duplication keys and tracker generation of the items handed out, not acknowledged."""
        self._given_consumer = consumer
        self._loop: ConsumerLoop | None = None
        self._consumer_overrides = dict(consumer_overrides or {})
        self._last_commit = time.monotonic()
        self._disclosures = self._disclosure_client(disclosures)

    # ------------------------------------------------------------------ receiving

    @property
    def transport(self) -> Transport:
        """Where answers go (a Kafka transport is created on first use)."""
        if self._transport is None:
            self._transport = KafkaTransport(self.settings)
        return self._transport

    def _subscribed(self) -> ConsumerLoop:
        if self._loop is None:
            self._loop = ConsumerLoop(
                self.settings,
                self.group_id,
                self.topics,
                name="sdk.consume",
                overrides={"logger": LIBRDKAFKA_LOG, **self._consumer_overrides},
                consumer=self._given_consumer,
                on_revoke=self._release,
                on_lost=self._release,
                on_error=self._on_error,
            )
            self._given_consumer = None  # closed with the loop; a new one is the library's
        return self._loop

    def offers(
        self, *, idle_timeout_s: float | None = None, max_items: int | None = None
    ) -> Generator[Incoming, None, None]:
        """Yield this provider's offers and cancellations, each once, oldest first per partition.

        Runs until ``max_items`` were yielded or nothing arrived for
        ``idle_timeout_s`` (forever by default; counted from the latest
        partition assignment at the earliest).
        """
        loop = self._subscribed()
        yielded = 0
        if max_items is None or max_items > 0:
            for message in loop.records(
                poll_s=self.poll_interval_s,
                idle_timeout_s=idle_timeout_s,
                on_quiet=lambda: self._commit_if_due(force=True),
            ):
                item = self._accept(message)
                if item is None:
                    self._commit_if_due()
                    continue
                yielded += 1
                self.stats.yielded += 1
                yield item
                if self.auto_ack:
                    self.ack(item)
                if max_items is not None and yielded >= max_items:
                    break
        self._commit_if_due(force=True)

    def _on_error(self, error: KafkaError) -> None:
        """A consumer error: fatal ones and refused ACLs end :meth:`offers`, others are logged."""
        if error.code() in _NOT_AUTHORISED:
            raise SdkConsumeError(
                f"the broker refused this principal ({error.name()}): it is not authorised "
                f"to read {', '.join(self.topics)} in group {self.group_id}; a provider "
                f"principal reads only its own offer topic, in groups named "
                f"<client_id>-provider-<its id>..."
            )
        if error.fatal():
            raise SdkConsumeError(f"the consumer failed: {error.name()}")
        log.warning("sdk.consume.error", error=error.name(), reason=error.str())

    def _accept(self, message: Message) -> Incoming | None:
        """The item of one record; None when it is not ours, a copy, or to be read again."""
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None:
            return None
        where = Partition(topic, partition)
        try:
            decoded = self._codec.decode(
                message.value(), message.headers(), topic=topic, key=message.key()
            )
        except RegistryUnavailableError:
            # Not the record's fault: read it again after a pause.
            log.warning("sdk.consume.registry_unavailable", topic=topic, partition=partition)
            self._subscribed().seek(where, offset)
            time.sleep(self.poll_interval_s)
            return None
        except DecodeError as exc:
            self.stats.undecodable += 1
            log.warning(
                "sdk.consume.undecodable",
                topic=topic,
                partition=partition,
                offset=offset,
                error=type(exc).__name__,
            )
            self._tracker.skip(where, offset)
            return None
        item = self._admit(decoded, where, offset)
        if item is None:
            self._tracker.skip(where, offset)
        return item

    def _admit(self, decoded: Decoded, where: Partition, offset: int) -> Incoming | None:
        """The item, if the record is addressed to this provider and not a copy."""
        event, envelope = decoded.event, decoded.envelope
        if (
            not isinstance(event, ReferralOffered | ReferralCancelled)
            or event.provider_id != self.provider_id
        ):
            self.stats.not_addressed += 1
            return None
        keys = dedupe_keys(event, event_id=envelope.id, source=envelope.source)
        if not self._dedupe.first_time(keys):
            self.stats.duplicates += 1
            log.info(
                "sdk.consume.duplicate",
                topic=where.topic,
                partition=where.partition,
                offset=offset,
                event_id=envelope.id,
            )
            return None
        self._held[(where, offset)] = (keys, self._tracker.track(where, offset))
        return Incoming(event, envelope.id, envelope.source, where.topic, where.partition, offset)

    @property
    def _tracker(self) -> OffsetTracker:
        return self._subscribed().tracker

    def ack(self, item: Incoming) -> None:
        """The caller handled ``item``: commit its offset (and any before it) now.

        Acknowledging twice, or an item of a partition this client no longer
        owns, does nothing.
        """
        partition = Partition(item.topic, item.partition)
        held = self._held.pop((partition, item.offset), None)
        if held is None or self._loop is None:
            return
        if self._loop.tracker.finish(partition, item.offset, held[1]):
            self._commit({partition})

    def rewind(self) -> None:
        """Give back every item not acknowledged: the next :meth:`offers` yields them again.

        For a caller whose handler failed and that carries on with the same
        client (a restart has the same effect). Records re-read that were
        already yielded and acknowledged are dropped as copies.
        """
        loop = self._loop
        if loop is None:
            return
        for partition in loop.tracker.outstanding():
            oldest = loop.tracker.rewind(partition)
            if oldest is not None:
                loop.seek(partition, oldest)
            self._release([partition])

    def _release(self, partitions: list[Partition]) -> None:
        """Forget the de-duplication keys of unacknowledged items of ``partitions``."""
        gone = set(partitions)
        for where in [w for w in self._held if w[0] in gone]:
            self._dedupe.forget(self._held.pop(where)[0])

    def commit(self) -> None:
        """Commit every partition's position now (what :meth:`close` does too)."""
        self._commit(None)

    def _commit_if_due(self, *, force: bool = False) -> None:
        if force or time.monotonic() - self._last_commit >= self.commit_interval_s:
            self._commit(None)

    def _commit(self, only: set[Partition] | None) -> None:
        if self._loop is not None and self._loop.commit(only):
            self._last_commit = time.monotonic()

    # ------------------------------------------------------------------ answering

    def accept(self, offer: OfferLike, *, occurred_at: datetime | None = None) -> str:
        """``referral.accepted``: the provider takes the referral."""
        return self._answer(ReferralAccepted, offer, occurred_at)

    def decline(
        self, offer: OfferLike, reason: DeclineReason | str, *, occurred_at: datetime | None = None
    ) -> str:
        """``referral.declined`` with a reason code; the router offers it to the next provider."""
        return self._answer(ReferralDeclined, offer, occurred_at, reason=reason)

    def start(self, offer: OfferLike, *, occurred_at: datetime | None = None) -> str:
        """``referral.started``: service delivery began (after accepting)."""
        return self._answer(ReferralStarted, offer, occurred_at)

    def complete(
        self,
        offer: OfferLike,
        outcome: ReferralOutcome | str = ReferralOutcome.SERVICE_PROVIDED,
        *,
        occurred_at: datetime | None = None,
    ) -> str:
        """``referral.completed`` with how the service ended."""
        return self._answer(ReferralCompleted, offer, occurred_at, outcome=outcome)

    def fail(
        self, offer: OfferLike, reason: FailureReason | str, *, occurred_at: datetime | None = None
    ) -> str:
        """``referral.failed``: an accepted or started service could not be delivered."""
        return self._answer(ReferralFailed, offer, occurred_at, reason=reason)

    def ref(self, offer: OfferLike) -> OfferRef:
        """The reference of an offer made to this provider.

        Raises :class:`SdkValidationError` for a cancellation and
        :class:`SdkNotAddressedError` for another provider's offer.
        """
        if isinstance(offer, OfferRef):
            return offer
        event = offer.event if isinstance(offer, Incoming) else offer
        if not isinstance(event, ReferralOffered):
            raise SdkValidationError("only an offer can be answered, not a cancellation")
        if event.provider_id != self.provider_id:
            raise SdkNotAddressedError("this offer was made to another provider")
        return OfferRef.of(event)

    def build_answer(
        self,
        model: type[_ANSWER],
        offer: OfferLike,
        *,
        occurred_at: datetime | None = None,
        **fields: Any,
    ) -> tuple[_ANSWER, str]:
        """The answer event and its deterministic CloudEvents id, without sending it.

        Without ``occurred_at``, an answer given before in this process keeps
        its first time, so that answering again is the very same event (the
        intake API would call the same id with another time a conflict).
        """
        ref = self.ref(offer)
        event_id = answer_id(self.provider_id, ref, model.event_type)
        event = build_event(
            model,
            survivor_id=ref.survivor_id,
            occurred_at=self._times.resolve(event_id, occurred_at, self._clock),
            referral_id=ref.referral_id,
            provider_id=self.provider_id,
            attempt=ref.attempt,
            **fields,
        )
        return event, event_id

    def _answer(
        self, model: type[_ANSWER], offer: OfferLike, occurred_at: datetime | None, **fields: Any
    ) -> str:
        event, event_id = self.build_answer(model, offer, occurred_at=occurred_at, **fields)
        return self.transport.publish(event, event_id=event_id, source=self.source)

    # ------------------------------------------------------------------ disclosure

    def _disclosure_client(
        self, given: DisclosureClient | tuple[str, str] | None
    ) -> DisclosureClient | None:
        if isinstance(given, DisclosureClient):
            return given
        if given is not None:
            url, api_key = given
            return DisclosureClient(
                HttpTransport(url, api_key), self.provider_id, owns_transport=True
            )
        if isinstance(self._transport, HttpTransport):
            return DisclosureClient(self._transport, self.provider_id)
        return None

    def disclosure(self, offer: OfferLike, *, wait_s: float = 10.0) -> Disclosure:
        """The personal data this provider may know for ``offer``, fetched and opened.

        Only the fields the referral's category needs, only while the offer
        and the survivor's consent stand (:mod:`connectors.sdk.disclosures`).
        It is personal data: keep it no longer than the service needs.
        """
        if self._disclosures is None:
            raise SdkValidationError(
                "disclosures come from the intake API: pass disclosures=(intake_url, api_key)"
            )
        return self._disclosures.fetch(self.ref(offer), wait_s=wait_s)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Commit what was handled, leave the group, flush answers."""
        try:
            if self._loop is not None:
                loop, self._loop = self._loop, None
                loop.close()
        finally:
            if self._owns_transport and self._transport is not None:
                self._transport.close()
            if self._disclosures is not None:
                self._disclosures.close()
