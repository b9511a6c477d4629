"""The SDKs' Kafka transport: write the record itself and wait for ``acks=all``.

For callers inside the platform's network, or partners with Kafka
credentials. It composes the shared edge layer (topics, codec, the one
acknowledged producer) and adds only the SDK's own part: turning Kafka's
answers into the SDK's errors, transient ones retried by
:class:`~connectors.sdk.retry.RetryPolicy`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from connectors.exceptions import SdkRejectedError, SdkTransientError, SdkValidationError
from connectors.sdk.events import check_event_id
from connectors.sdk.retry import RetryPolicy
from connectors.sdk.transport import Closing, Outgoing
from schemas.models import Event
from streams.codec import Codec, EncodedRecord
from streams.exceptions import EncodeError, RegistryUnavailableError, UnknownTopicError
from streams.producing import AckedProducer, OutRecord, ProducerLike, kafka_error_is_transient
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["LIBRDKAFKA_LOG", "KafkaTransport"]

LIBRDKAFKA_LOG = logging.getLogger("connectors.sdk.librdkafka")
"""Where the SDK's Kafka clients log: inside someone else's program, its logging set-up
(not the terminal, librdkafka's default) is where connection messages belong.
"""


class KafkaTransport(Closing):
    """Publishes events on the sender's own topic, for the inbound relay to check and move on.

    The topic follows from the events' source: ``/agencies/<id>`` writes
    ``<ns>.from.agencies.<id>.v1``, ``/providers/<id>`` writes
    ``<ns>.from.providers.<id>.v1`` (:meth:`streams.topics.Topics.from_party`),
    which the broker lets only that party's principal write. The inbound
    relay (``safepassage intake relay``) holds each record to the intake
    API's rules and moves it onto the intake or provider-responses topic. A
    retry by this transport after librdkafka's own is a new record under the
    same CloudEvents id, which consumers drop by id.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        retry: RetryPolicy | None = None,
        delivery_timeout_s: float = 30.0,
        codec: Codec | None = None,
        producer: ProducerLike | None = None,
    ) -> None:
        """Create the producer (or wrap ``producer``); nothing connects until the first publish.

        ``delivery_timeout_s`` becomes librdkafka's ``message.timeout.ms``:
        how long one attempt may take before its delivery report says
        ``_MSG_TIMED_OUT``.
        """
        if delivery_timeout_s <= 0:
            raise ValueError("delivery_timeout_s must be positive")
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self.delivery_timeout_s = delivery_timeout_s
        self.codec = codec or Codec(settings, source="/safepassage/sdk")
        self.topics = Topics.of(settings)
        timeout_ms = max(1, int(delivery_timeout_s * 1000))
        self._producer = AckedProducer(
            settings,
            name="sdk",
            overrides={
                "message.timeout.ms": timeout_ms,
                "request.timeout.ms": min(timeout_ms, 30_000),
                "logger": LIBRDKAFKA_LOG,
            },
            producer=producer,
        )

    def encode(self, item: Outgoing) -> EncodedRecord:
        """The record of one event on its inbound topic, or :class:`SdkValidationError`."""
        check_event_id(item.event_id)
        try:
            self.topics.inbound(item.event.event_type)  # a party's event type, or refused
            topic = self.topics.from_party(item.source)
            return self.codec.encode(item.event, topic, event_id=item.event_id, source=item.source)
        except RegistryUnavailableError as exc:
            raise SdkTransientError(str(exc), event_ids=(item.event_id,)) from exc
        except (EncodeError, UnknownTopicError, ValueError) as exc:
            raise SdkValidationError(str(exc)) from exc

    def publish(self, event: Event, *, event_id: str, source: str) -> str:
        """Publish one event and wait for ``acks=all``; its CloudEvents id."""
        return self.publish_many([Outgoing(event, event_id, source)])[0]

    async def publish_async(self, event: Event, *, event_id: str, source: str) -> str:
        """:meth:`publish` in a worker thread (the producer is thread-safe)."""
        return await asyncio.to_thread(self.publish, event, event_id=event_id, source=source)

    def publish_many(self, items: Sequence[Outgoing]) -> list[str]:
        """Publish several events; return their ids once every one is acknowledged.

        Every event is encoded (and so validated) before the first is sent.
        A survivor's own events are sent one at a time, each once the one
        before it is acknowledged, so a failure and retry can never put a
        referral ahead of its consent. A transient failure is retried with
        what was not acknowledged, in order; a permanent one raises
        :class:`SdkRejectedError` naming the events not acknowledged.
        """
        pending: list[tuple[OutRecord, str]] = []
        for item in items:
            record = self.encode(item)
            out = OutRecord(record.topic, record.key, record.value, tuple(record.headers))
            pending.append((out, item.event_id))
        ids = tuple(event_id for _, event_id in pending)

        def attempt() -> None:
            outcome = self._producer.send_in_key_order(
                [record for record, _ in pending],
                timeout_s=self.delivery_timeout_s + 5.0,
                is_final=lambda error: not kafka_error_is_transient(error),
            )
            left = [pending[index] for index in outcome.left]
            left_ids = tuple(event_id for _, event_id in left)
            if outcome.final is not None:
                raise SdkRejectedError(
                    f"Kafka refused the record: {outcome.final.name()}",
                    event_ids=left_ids,
                    title=outcome.final.name(),
                    detail=outcome.final.str(),
                )
            pending[:] = left
            if left:
                first = outcome.errors.get(outcome.left[0]) or next(iter(outcome.errors.values()))
                raise SdkTransientError(
                    f"Kafka did not acknowledge: {first.name()}", event_ids=left_ids
                )

        self.retry.run(attempt, event_ids=ids)
        return list(ids)

    def close(self) -> None:
        """Deliver what is still queued (up to the delivery timeout)."""
        self._producer.flush(self.delivery_timeout_s)
