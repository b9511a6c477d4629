"""How the SDKs hand an event to the platform: Kafka or the intake API, with one retry policy.

Both SDKs (:mod:`connectors.sdk.agency`, :mod:`connectors.sdk.provider`)
build a typed event, give it a CloudEvents id and source, and pass it to a
:class:`Transport`:

* :class:`KafkaTransport` writes the record itself (inside the platform's
  network, or for partners with Kafka credentials): the codec's Avro body,
  CloudEvents binary-mode headers, the survivor as key, an idempotent
  ``acks=all`` producer, and waits for the broker's acknowledgement.
* :class:`HttpTransport` POSTs a CloudEvents 1.0 *structured-mode* JSON
  document to the intake API (``<base_url>/v1/events``), which checks the
  caller's role and writes the record under the caller's source and id.

**Retries.** Only transient failures are retried (:func:`kafka_error_is_transient`,
:data:`TRANSIENT_STATUSES`, timeouts and connection errors): exponential
backoff with full jitter, at most :attr:`RetryPolicy.max_attempts` attempts
within :attr:`RetryPolicy.max_elapsed_s`, and never sooner than a server's
``Retry-After``. Every attempt carries the same CloudEvents id, so an
attempt that did arrive although its answer was lost is a copy the
platform drops (the intake API's idempotency store, the router's
idempotency window). Permanent failures raise at once.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx
from confluent_kafka import KafkaError
from pydantic import SecretStr
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from connectors.exceptions import (
    SdkRejectedError,
    SdkRetriesExhaustedError,
    SdkTransientError,
    SdkValidationError,
)
from schemas.models import Event
from schemas.types import Sealed
from streams.codec import Codec, EncodedRecord, rfc3339
from streams.exceptions import EncodeError, RegistryUnavailableError, UnknownTopicError
from streams.logs import get_logger
from streams.producing import (
    TRANSIENT_KAFKA_ERRORS,
    AckedProducer,
    OutRecord,
    ProducerLike,
    kafka_error_is_transient,
)
from streams.retry import TRANSIENT_HTTP_ERRORS, parse_retry_after
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = [
    "BATCH_CONTENT_TYPE",
    "EVENTS_PATH",
    "IN_PROGRESS_PROBLEM",
    "LIBRDKAFKA_LOG",
    "PROBLEM_CONTENT_TYPE",
    "STRUCTURED_CONTENT_TYPE",
    "TRANSIENT_KAFKA_ERRORS",
    "TRANSIENT_STATUSES",
    "HttpTransport",
    "KafkaTransport",
    "Outgoing",
    "RetryPolicy",
    "Transport",
    "check_event_id",
    "kafka_error_is_transient",
    "rejected_from_response",
    "structured_cloudevent",
]

log = get_logger(__name__)

LIBRDKAFKA_LOG = logging.getLogger("connectors.sdk.librdkafka")
"""Where the SDK's Kafka clients log (instead of librdkafka's own lines on stderr).

An SDK runs inside someone else's program: its connection messages belong in
that program's logging set-up, at their level, not on its terminal.
"""

T = TypeVar("T")

EVENTS_PATH = "/v1/events"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
PROBLEM_CONTENT_TYPE = "application/problem+json"

TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
"""HTTP answers that say "not now" rather than "not this": retried.

Everything else that is not 2xx (400, 401, 403, 409, 413, 415, 500, ...)
is permanent: the same request would get the same answer. The one
exception is the intake API's 409 *in progress* (see :func:`_in_progress`).
"""

_EVENT_ID_MAX = 256


def check_event_id(event_id: str) -> str:
    """The id, if it can serve as a CloudEvents id on both transports.

    Printable ASCII without spaces, 1 to 256 characters: it travels as a
    Kafka header and in the intake API's logs and idempotency store.
    """
    if not (0 < len(event_id) <= _EVENT_ID_MAX) or not all("!" <= ch <= "~" for ch in event_id):
        raise SdkValidationError(
            "event_id must be 1 to 256 printable ASCII characters without spaces",
            ({"loc": "event_id", "type": "string_pattern_mismatch", "msg": "invalid id"},),
        )
    return event_id


# --------------------------------------------------------------------------- the interface


@dataclass(frozen=True)
class Outgoing:
    """One event to publish, with the CloudEvents identity it is published under."""

    event: Event
    event_id: str
    source: str


class Transport(Protocol):
    """What the SDKs need from a way to reach the platform."""

    def publish(self, event: Event, *, event_id: str, source: str) -> str:
        """Publish one event, retrying transient failures; its CloudEvents id once accepted."""
        ...

    def publish_many(self, items: Sequence[Outgoing]) -> list[str]:
        """Publish several events (each survivor's in the given order); their ids."""
        ...

    async def publish_async(self, event: Event, *, event_id: str, source: str) -> str:
        """:meth:`publish` without blocking the event loop."""
        ...

    def close(self) -> None:
        """Release connections (and, for Kafka, deliver what is still queued)."""
        ...


# --------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again after a transient failure, and for how long.

    ``sleep`` is injectable so tests can record the waits instead of
    sleeping (set ``initial_wait_s=0`` for zero backoff). A ``Retry-After``
    longer than ``max_retry_after_s`` ends the retries at once: waiting
    that long inside a call would look like a hang, and the caller can
    schedule a later attempt under the same id.
    """

    max_attempts: int = 6
    max_elapsed_s: float = 60.0
    initial_wait_s: float = 0.2
    max_wait_s: float = 10.0
    max_retry_after_s: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def __post_init__(self) -> None:
        """Nonsense bounds would retry forever or never."""
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.max_elapsed_s, self.initial_wait_s, self.max_wait_s) < 0:
            raise ValueError("retry times must not be negative")

    def wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: jittered backoff, at least the server's Retry-After."""
        jittered = wait_random_exponential(multiplier=self.initial_wait_s, max=self.max_wait_s)
        wait = float(jittered(state))
        retry_after = _retry_after_of(state)
        return wait if retry_after is None else max(wait, retry_after)

    def run(self, operation: Callable[[], T], *, event_ids: tuple[str, ...]) -> T:
        """Run ``operation``, retrying :class:`SdkTransientError` only.

        Anything else (a rejection, a bug) propagates from the first attempt.
        When the policy gives up, :class:`SdkRetriesExhaustedError` is raised
        from the last transient error.
        """
        retrying = Retrying(
            retry=retry_if_exception_type(SdkTransientError),
            stop=(
                stop_after_attempt(self.max_attempts)
                | stop_before_delay(self.max_elapsed_s)
                | _StopOnLongRetryAfter(self.max_retry_after_s)
            ),
            wait=self.wait,
            sleep=self.sleep,
            before_sleep=_log_retry,
            reraise=False,
        )
        try:
            return retrying(operation)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            attempts = exc.last_attempt.attempt_number
            if isinstance(last, SdkTransientError):
                event_ids = last.event_ids or event_ids
            raise SdkRetriesExhaustedError(
                f"gave up after {attempts} attempt(s): {last}",
                event_ids=event_ids,
                attempts=attempts,
            ) from last


class _StopOnLongRetryAfter(stop_base):
    """Stop when the server asks for a longer pause than the policy will sit through."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        retry_after = _retry_after_of(retry_state)
        return retry_after is not None and retry_after > self.limit_s


def _retry_after_of(state: RetryCallState) -> float | None:
    outcome = state.outcome
    if outcome is None or not outcome.failed:
        return None
    error = outcome.exception()
    return error.retry_after if isinstance(error, SdkTransientError) else None


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning(
        "sdk.publish.retry",
        attempt=state.attempt_number,
        wait_s=round(wait, 3),
        error=type(error).__name__,
        status=getattr(error, "status", None),
        event_ids=list(getattr(error, "event_ids", ())),
    )


# --------------------------------------------------------------------------- Kafka


class KafkaTransport:
    """Publishes events straight to the intake or provider-responses topic.

    The topic follows from the event type by the one inbound rule
    (:meth:`streams.topics.Topics.inbound`, as in the intake API): agency
    events go to ``<ns>.intake.v1``, provider answers to
    ``<ns>.provider-responses.v1``, anything else is refused before it is sent.
    Records go through the one acknowledged producer
    (:class:`streams.producing.AckedProducer`, idempotent, ``acks=all``),
    whose synchronous face keeps each survivor's order; a retry by this
    transport after librdkafka's own is a new record under the same
    CloudEvents id, which consumers drop by id.
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

    def topic_for(self, event: Event) -> str:
        """The inbound topic of ``event`` (``Topics.inbound``); :class:`SdkValidationError` if none.

        The codec then checks the event against that topic's contract (its key above all).
        """
        try:
            return self.topics.inbound(event.event_type)
        except UnknownTopicError as exc:
            raise SdkValidationError(str(exc)) from None

    def encode(self, item: Outgoing) -> EncodedRecord:
        """The record of one event, or :class:`SdkValidationError` (nothing is sent)."""
        check_event_id(item.event_id)
        topic = self.topic_for(item.event)
        try:
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
        Events of different survivors are in flight together; a survivor's
        own events are sent one after the other, each only once the one
        before it is acknowledged, so a failure and retry can never put a
        later event (a referral) ahead of an earlier one (the consent).
        A transient failure is retried by the policy with what was not
        acknowledged, in order; a permanent one raises
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
            if outcome.final is not None:
                raise _rejected(outcome.final, tuple(event_id for _, event_id in left))
            pending[:] = left
            if left:
                first = outcome.errors.get(outcome.left[0]) or next(iter(outcome.errors.values()))
                raise SdkTransientError(
                    f"Kafka did not acknowledge: {first.name()}",
                    event_ids=tuple(event_id for _, event_id in left),
                )

        self.retry.run(attempt, event_ids=ids)
        return list(ids)

    def close(self) -> None:
        """Deliver what is still queued (up to the delivery timeout)."""
        self._producer.flush(self.delivery_timeout_s)

    def __enter__(self) -> KafkaTransport:
        """Use as a context manager to flush on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Flush the producer."""
        self.close()


def _rejected(error: KafkaError, event_ids: tuple[str, ...]) -> SdkRejectedError:
    return SdkRejectedError(
        f"Kafka refused the record: {error.name()}",
        event_ids=event_ids,
        title=error.name(),
        detail=error.str(),
    )


# --------------------------------------------------------------------------- HTTP


def structured_cloudevent(item: Outgoing) -> dict[str, Any]:
    """The CloudEvents 1.0 structured-mode JSON document of one event.

    ``data`` is the event's pydantic JSON form (``model_dump(mode="json")``),
    which the intake API validates back into the same model, except for
    sealed fields: their ``ciphertext`` is base64 (RFC 4648, padded), as the
    intake API expects. Pydantic's own JSON form would write the bytes as
    UTF-8 text, which ciphertext almost never is.
    """
    check_event_id(item.event_id)
    event = item.event
    sealed = {
        name: value
        for name in type(event).model_fields
        if isinstance(value := getattr(event, name), Sealed)
    }
    data = event.model_dump(mode="json", exclude=set(sealed))
    for name, value in sealed.items():
        data[name] = {
            **value.model_dump(mode="json", exclude={"ciphertext"}),
            "ciphertext": base64.b64encode(value.ciphertext).decode("ascii"),
        }
    return {
        "specversion": "1.0",
        "id": item.event_id,
        "source": item.source,
        "type": event.event_type,
        "time": rfc3339(event.occurred_at),
        "subject": str(event.subject),
        "datacontenttype": "application/json",
        "data": data,
    }


def _problem(response: httpx.Response) -> dict[str, Any]:
    """The problem+json members of an error answer ({} when the body is not one)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def rejected_from_response(
    response: httpx.Response, event_ids: tuple[str, ...]
) -> SdkRejectedError:
    """The typed error of a permanent HTTP failure, from its RFC 9457 problem document."""
    problem = _problem(response)
    status = problem.get("status")
    status = status if isinstance(status, int) else response.status_code
    title = problem.get("title")
    title = title if isinstance(title, str) and title else response.reason_phrase
    detail = problem.get("detail")
    kind = problem.get("type")
    errors = problem.get("errors")
    parsed_errors = (
        tuple(e for e in errors if isinstance(e, dict)) if isinstance(errors, list) else ()
    )
    message = f"{response.status_code} {title}"
    if isinstance(detail, str) and detail:
        message = f"{message}: {detail}"
    return SdkRejectedError(
        message,
        event_ids=event_ids,
        status=status,
        title=title,
        detail=detail if isinstance(detail, str) else None,
        type=kind if isinstance(kind, str) and kind else "about:blank",
        errors=parsed_errors,
    )


IN_PROGRESS_PROBLEM = "urn:safepassage:problem:in-progress"
"""The intake API's 409 while another request publishes the same (source, id)."""


def _in_progress(response: httpx.Response, problem: Mapping[str, Any]) -> bool:
    """A 409 that means "being published right now, ask again", not "this id is taken".

    The intake API answers a concurrent retry of the same event with 409,
    problem type :data:`IN_PROGRESS_PROBLEM` and a ``Retry-After``; a 409 for
    an id used with other content has neither and is permanent.
    """
    if response.status_code != 409:
        return False
    return problem.get("type") == IN_PROGRESS_PROBLEM or "Retry-After" in response.headers


class HttpTransport:
    """Publishes events to the intake API as CloudEvents 1.0 structured-mode JSON.

    One event: ``POST <base_url>/v1/events`` with
    ``application/cloudevents+json``; several: the same path with
    ``application/cloudevents-batch+json`` (a JSON array). The API key goes
    in ``Authorization: Bearer``; the intake API decides by it which role
    (agency, provider) may publish what. 202 means accepted (written to
    Kafka, or a copy of an id already written).
    """

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | str,
        *,
        retry: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        batch_size: int = 100,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Open a connection pool to ``base_url``; ``http_transport`` stands in for the network.

        ``timeout_s`` bounds connecting, sending and reading each attempt;
        ``batch_size`` is the most events one batch request carries.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not key.get_secret_value():
            raise ValueError("api_key must not be empty")
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self._client = httpx.Client(
            base_url=base_url,
            timeout=timeout_s,
            transport=http_transport,
            headers={
                "Authorization": f"Bearer {key.get_secret_value()}",
                "Accept": f"{PROBLEM_CONTENT_TYPE}, application/json",
            },
        )

    def publish(self, event: Event, *, event_id: str, source: str) -> str:
        """POST one event; its CloudEvents id once the intake API answered 202."""
        document = structured_cloudevent(Outgoing(event, event_id, source))
        body = json.dumps(document, separators=(",", ":")).encode("utf-8")
        ids = (event_id,)
        self.retry.run(
            functools.partial(self._post, body, STRUCTURED_CONTENT_TYPE, ids), event_ids=ids
        )
        return event_id

    async def publish_async(self, event: Event, *, event_id: str, source: str) -> str:
        """:meth:`publish` in a worker thread (``httpx.Client`` is thread-safe)."""
        return await asyncio.to_thread(self.publish, event, event_id=event_id, source=source)

    def publish_many(self, items: Sequence[Outgoing]) -> list[str]:
        """POST events in batches of :attr:`batch_size`, in order; their ids.

        Every event is converted (and so validated) before the first request.
        Batches are not atomic with each other: when one fails, the error's
        ``event_ids`` are those of that batch and every later one; earlier
        batches were accepted. Publishing all of them again is safe.
        """
        documents = [structured_cloudevent(item) for item in items]
        for start in range(0, len(documents), self.batch_size):
            chunk = documents[start : start + self.batch_size]
            body = json.dumps(chunk, separators=(",", ":")).encode("utf-8")
            ids = tuple(str(doc["id"]) for doc in chunk)
            rest = tuple(str(doc["id"]) for doc in documents[start:])
            try:
                self.retry.run(
                    functools.partial(self._post, body, BATCH_CONTENT_TYPE, ids), event_ids=ids
                )
            except (SdkRejectedError, SdkRetriesExhaustedError) as exc:
                exc.event_ids = rest
                raise
        return [str(doc["id"]) for doc in documents]

    def _post(self, body: bytes, content_type: str, ids: tuple[str, ...]) -> None:
        """One attempt: 2xx returns; transient failures and permanent ones raise typed errors."""
        try:
            response = self._client.post(
                EVENTS_PATH, content=body, headers={"Content-Type": content_type}
            )
        except TRANSIENT_HTTP_ERRORS as exc:
            raise SdkTransientError(
                f"no answer from the intake API ({type(exc).__name__})", event_ids=ids
            ) from exc
        except httpx.HTTPError as exc:
            raise SdkRejectedError(
                f"the request could not be made ({type(exc).__name__})",
                event_ids=ids,
                title=type(exc).__name__,
            ) from exc
        if response.is_success:
            return
        problem = _problem(response)
        if response.status_code in TRANSIENT_STATUSES or _in_progress(response, problem):
            title = problem.get("title") or response.reason_phrase
            raise SdkTransientError(
                f"{response.status_code} {title}",
                event_ids=ids,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                status=response.status_code,
            )
        raise rejected_from_response(response, ids)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> HttpTransport:
        """Use as a context manager to close the pool on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the connection pool."""
        self.close()
