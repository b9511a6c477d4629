"""The intake HTTP API: agencies and providers hand CloudEvents to SafePassage over HTTP.

``POST /v1/events`` takes CloudEvents 1.0 in the HTTP binding's *structured*
(``application/cloudevents+json``, one event) and *batch*
(``application/cloudevents-batch+json``, an array) content modes. Each
event's ``data`` is the JSON of the event model its ``type`` names
(:mod:`schemas.models`); the typed event is encoded by the codec under the
caller's own CloudEvents ``id`` and ``source`` and published to the topic the
contract gives it: agency events to ``intake.v1``, provider answers to
``provider-responses.v1``.

**202 means on Kafka.** The answer is 202 only after the broker acknowledged
every record (``acks=all``, idempotent producer); anything else is an
error the client can retry: 503 when the broker is down, 429 when too many
publishes are in flight. A retry is safe: :mod:`connectors.idempotency`
makes (source, id) publish once and answers a retry with the same receipt.

**Errors** are RFC 9457 ``application/problem+json`` documents, with field
level ``errors`` (``location`` is a JSON Pointer into the request body) for
validation. Bad input is always a 4xx, never a 500.

**Privacy.** Responses, logs and Kafka headers carry ids, types and codes
only; the body is never logged, and CloudEvents extension attributes are
refused because they would travel unsealed in Kafka headers.

The publisher is an interface (:class:`Publisher`): the service uses
:class:`KafkaPublisher` (confluent-kafka, delivery reports settled onto the
event loop from a poll thread); unit tests pass an in-process recorder.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import importlib.metadata
import json
import logging
import math
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec, Protocol, TypeVar, get_args
from uuid import UUID

import click
import httpx
import uvicorn
from confluent_kafka import KafkaError, KafkaException, Producer
from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic.json_schema import models_json_schema
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors.auth import (
    ApiKeyStore,
    Principal,
    Role,
    add_key,
    authorize_event,
    authorize_event_type,
    authorize_status_read,
    key_id_of,
)
from connectors.exceptions import (
    BrokerUnavailableError,
    ConnectorsError,
    ForbiddenError,
    IdempotencyStoreError,
)
from connectors.idempotency import Claim, ClaimOutcome, IdempotencyStore, KeyedLocks, fingerprint
from schemas.models import MODELS, Event
from schemas.types import Sealed, utc_millis
from streams.clients import producer_config
from streams.codec import Codec, EncodedRecord
from streams.contract import AGENCY_EVENTS, PROVIDER_ANSWERS
from streams.exceptions import EncodeError
from streams.logs import get_logger
from streams.settings import KafkaSettings

__all__ = [
    "BATCH_MEDIA_TYPE",
    "STRUCTURED_MEDIA_TYPE",
    "Delivery",
    "IntakeSettings",
    "KafkaPublisher",
    "ProblemError",
    "Publisher",
    "create_app",
    "register",
    "serve",
]

STRUCTURED_MEDIA_TYPE = "application/cloudevents+json"
BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"
PROBLEM_MEDIA_TYPE = "application/problem+json"
INTAKE_SOURCE = "/safepassage/intake"
"""The codec's own source; every record carries its caller's source instead."""

MAX_RECORD_BYTES = 900_000
"""Below librdkafka's ``message.max.bytes`` (1,000,000): too large is a 413, not a 503."""

PUBLISHABLE = AGENCY_EVENTS | PROVIDER_ANSWERS

_log = get_logger("connectors.intake")


class _Throttle(logging.Filter):
    """Lets each kind of librdkafka line through once per ``interval_s``.

    While a broker is down librdkafka logs a failed connection on every
    reconnect (about once a second here); one line of each kind is enough.
    The kind is the level and the first word (librdkafka's facility, e.g. FAIL).
    """

    def __init__(self, interval_s: float = 30.0) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._last: dict[tuple[int, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.levelno, record.getMessage().split(" ", 1)[0])
        now = time.monotonic()
        if now - self._last.get(kind, -math.inf) < self._interval_s:
            return False
        self._last[kind] = now
        return True


_librdkafka_log = logging.getLogger("connectors.intake.librdkafka")
_librdkafka_log.addFilter(_Throttle())


# ------------------------------------------------------------------------ settings


class IntakeSettings(BaseSettings):
    """Everything the intake service reads at start (prefix ``SAFEPASSAGE_INTAKE_``).

    Kafka itself is configured by :class:`~streams.settings.KafkaSettings`
    (``SAFEPASSAGE_BOOTSTRAP_SERVERS`` ...), shared with every service. Two
    names are platform-wide rather than the intake's own and keep their
    ``SAFEPASSAGE_`` names: the keys file and the router's status URL.
    """

    model_config = SettingsConfigDict(
        env_prefix="SAFEPASSAGE_INTAKE_", frozen=True, populate_by_name=True
    )

    host: str = Field(default="127.0.0.1", description="SAFEPASSAGE_INTAKE_HOST.")
    port: int = Field(default=8080, ge=1, le=65535, description="SAFEPASSAGE_INTAKE_PORT.")
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="SAFEPASSAGE_INTAKE_MAX_BODY_BYTES: larger request bodies get 413.",
    )
    max_batch_items: int = Field(
        default=100, ge=1, description="SAFEPASSAGE_INTAKE_MAX_BATCH_ITEMS: events per batch."
    )
    max_in_flight: int = Field(
        default=1000,
        ge=1,
        description=(
            "SAFEPASSAGE_INTAKE_MAX_IN_FLIGHT: events being published at once; "
            "more get 429 with Retry-After (backpressure)."
        ),
    )
    publish_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="SAFEPASSAGE_INTAKE_PUBLISH_TIMEOUT_S: wait for the broker's ack, then 503.",
    )
    state_dir: Path = Field(
        default=Path(".state/intake"),
        description="SAFEPASSAGE_INTAKE_STATE_DIR: holds the idempotency store (SQLite).",
    )
    idempotency_ttl: timedelta = Field(
        default=timedelta(days=7),
        description=(
            "SAFEPASSAGE_INTAKE_IDEMPOTENCY_TTL: how long a (source, id) is remembered "
            "(seconds or ISO 8601, e.g. P7D)."
        ),
    )
    idempotency_max_entries: int = Field(
        default=1_000_000,
        ge=1,
        description="SAFEPASSAGE_INTAKE_IDEMPOTENCY_MAX_ENTRIES: bound of the store.",
    )
    api_keys_file: Path = Field(
        default=Path(".state/api-keys.yaml"),
        validation_alias="SAFEPASSAGE_API_KEYS_FILE",
        description="SAFEPASSAGE_API_KEYS_FILE: YAML file of hashed API keys.",
    )
    router_status_url: str = Field(
        default="http://127.0.0.1:6066",
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        validation_alias="SAFEPASSAGE_ROUTER_STATUS_URL",
        description="SAFEPASSAGE_ROUTER_STATUS_URL: a router worker's web server.",
    )
    router_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="SAFEPASSAGE_INTAKE_ROUTER_TIMEOUT_S."
    )

    @model_validator(mode="after")
    def _consistent(self) -> IntakeSettings:
        """A batch larger than the in-flight limit could never be accepted."""
        if self.max_batch_items > self.max_in_flight:
            raise ValueError("max_batch_items must not exceed max_in_flight")
        if self.idempotency_ttl <= timedelta(0):
            raise ValueError("idempotency_ttl must be positive")
        return self

    @property
    def idempotency_lease(self) -> timedelta:
        """How long a pending claim blocks others: well past the longest publish."""
        return timedelta(seconds=max(60.0, 3 * self.publish_timeout_s))


# ------------------------------------------------------------------------ problems

_PROBLEM_URN = "urn:safepassage:problem:"


@dataclass(frozen=True)
class FieldError:
    """One field-level problem: where (JSON Pointer into the body) and what."""

    location: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"location": self.location, "message": self.message}


class ProblemError(ConnectorsError):
    """An HTTP answer other than success, rendered as RFC 9457 problem+json.

    Raised anywhere in request handling; the exception handler renders it.
    ``slug`` names the problem type (``urn:safepassage:problem:<slug>``);
    docs/intake-api.md lists them all.
    """

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Describe the problem; nothing here may contain personal data."""
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = tuple(errors)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document."""
        document: dict[str, Any] = {
            "type": _PROBLEM_URN + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            document["instance"] = instance
        if self.errors:
            document["errors"] = [error.to_dict() for error in self.errors]
        document.update(self.extra)
        return document

    def response(self, instance: str | None = None) -> JSONResponse:
        """The HTTP response."""
        return JSONResponse(
            self.body(instance),
            status_code=self.status,
            media_type=PROBLEM_MEDIA_TYPE,
            headers=self.headers,
        )


def _invalid(errors: Sequence[FieldError]) -> ProblemError:
    count = len(errors)
    return ProblemError(
        400,
        "invalid-event",
        "Invalid CloudEvent",
        f"{count} problem{'s' if count != 1 else ''} with the request body; see errors",
        errors=errors,
    )


def _malformed(detail: str, location: str = "") -> ProblemError:
    return ProblemError(
        400,
        "malformed-request",
        "Malformed request",
        detail,
        errors=[FieldError(location, detail)],
    )


def _broker_unavailable(detail: str, **extra: Any) -> ProblemError:
    return ProblemError(
        503,
        "broker-unavailable",
        "Kafka is unavailable",
        detail,
        headers={"Retry-After": "5"},
        extra=extra,
    )


def _pointer(parts: Sequence[str | int]) -> str:
    """A JSON Pointer (RFC 6901) from path segments."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _pydantic_errors(error: ValidationError, prefix: str) -> list[FieldError]:
    """Field errors of a pydantic failure, located under ``prefix``; no input values."""
    return [
        FieldError(prefix + _pointer(item["loc"]), item["msg"])
        for item in error.errors(include_input=False, include_url=False, include_context=False)
    ]


# ---------------------------------------------------------------- OpenAPI models


class FieldProblem(BaseModel):
    """One field-level problem."""

    location: str = Field(description="JSON Pointer into the request body, e.g. /data/age_group.")
    message: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem document."""

    type: str = Field(description="urn:safepassage:problem:<slug>; see the API docs.")
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None


class Receipt(BaseModel):
    """Where an accepted event was written; the same again for a retry."""

    id: str
    source: str
    type: str
    topic: str
    partition: int
    offset: int


class BatchReceipt(BaseModel):
    """One receipt per event of a batch, in the order of the batch."""

    accepted: list[Receipt]


class Health(BaseModel):
    """Whether the service can reach Kafka."""

    status: Literal["ok"]
    broker: Literal["reachable"]


# --------------------------------------------------------------- the envelope

_RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
CeId = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,256}$")]
"""Printable ASCII without spaces: it becomes a Kafka header and part of a key."""
CeSource = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,512}$")]
"""A URI-reference naming the sending system (never a person)."""
CeTime = Annotated[
    str, StringConstraints(pattern=_RFC3339), Field(json_schema_extra={"format": "date-time"})
]
"""RFC 3339 with a zone; must be the event's ``occurred_at``."""
CeSubject = Annotated[str, Field(json_schema_extra={"format": "uuid"})]
DataContentType = Annotated[
    str, StringConstraints(pattern=r"^application/json(\s*;\s*charset=(utf-8|UTF-8))?$")
]

_ENVELOPE_FIELDS = frozenset(
    {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"}
)


class _Envelope(BaseModel):
    """The CloudEvents context attributes the intake accepts; ``data`` checked per type."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"]
    id: CeId
    source: CeSource
    type: str
    time: CeTime
    subject: str | None = None
    datacontenttype: DataContentType | None = None
    data: dict[str, Any]


class _CloudEventDoc(BaseModel):
    """The context attributes as documented; each accepted type adds ``type`` and ``data``."""

    model_config = ConfigDict(extra="forbid")

    specversion: Literal["1.0"]
    id: CeId
    source: CeSource
    time: CeTime
    subject: CeSubject | None = None
    datacontenttype: DataContentType | None = None


def _envelope_schema_model(event_type: str, model: type[Event]) -> type[BaseModel]:
    """A documented CloudEvent of one type (OpenAPI only; validation is :class:`_Envelope`)."""
    created: type[BaseModel] = create_model(
        f"{model.__name__}CloudEvent",
        __base__=_CloudEventDoc,
        __doc__=f"A {event_type} CloudEvent; data is a {model.__name__}.",
        type=(str, Field(json_schema_extra={"const": event_type})),
        data=(model, ...),
    )
    return created


def _sealed_fields(model: type[Event]) -> tuple[str, ...]:
    """Fields holding :class:`Sealed` data, whose ``ciphertext`` is base64 in JSON."""
    return tuple(
        name
        for name, info in model.model_fields.items()
        if info.annotation is Sealed or Sealed in get_args(info.annotation)
    )


_SEALED = {event_type: _sealed_fields(model) for event_type, model in MODELS.items()}


def _decode_sealed(
    event_type: str, data: Mapping[str, Any], prefix: str
) -> tuple[dict[str, Any], list[FieldError]]:
    """``data`` with each sealed ``ciphertext`` decoded from base64 (RFC 4648, padded)."""
    decoded = dict(data)
    errors: list[FieldError] = []
    for name in _SEALED[event_type]:
        sealed = decoded.get(name)
        if not isinstance(sealed, dict) or not isinstance(sealed.get("ciphertext"), str):
            continue
        try:
            raw = base64.b64decode(sealed["ciphertext"], validate=True)
        except (binascii.Error, ValueError):
            errors.append(
                FieldError(f"{prefix}/{name}/ciphertext", "must be base64 (RFC 4648, padded)")
            )
            continue
        decoded[name] = {**sealed, "ciphertext": raw}
    return decoded, errors


def _media_type(request: Request) -> str:
    """The request's media type if the intake takes it; 415 otherwise."""
    header = request.headers.get("content-type", "")
    media_type, _, parameters = header.partition(";")
    media_type = media_type.strip().lower()
    accepted = f"{STRUCTURED_MEDIA_TYPE}, {BATCH_MEDIA_TYPE}"
    if media_type not in {STRUCTURED_MEDIA_TYPE, BATCH_MEDIA_TYPE}:
        shown = media_type[:80] or "none"
        binary = (
            " (binary content mode is not supported)" if media_type == "application/json" else ""
        )
        raise ProblemError(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"Content-Type {shown}{binary}; send {accepted}",
            headers={"Accept-Post": accepted},
        )
    for parameter in filter(None, (p.strip() for p in parameters.split(";"))):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise ProblemError(
                415,
                "unsupported-media-type",
                "Unsupported media type",
                "only charset=utf-8 is accepted",
                headers={"Accept-Post": accepted},
            )
    return media_type


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes by Content-Length or as it streams in."""
    too_large = ProblemError(
        413,
        "payload-too-large",
        "Request body too large",
        f"the body must not exceed {limit} bytes",
    )
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise _malformed("Content-Length is not a number") from None
        if length > limit:
            raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON objects with a repeated member name are ambiguous; refuse them."""
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"member {name[:64]!r} appears more than once")
        result[name] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(body: bytes) -> Any:
    """The body as JSON: UTF-8, no NaN or Infinity, no repeated member names."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("the body is not UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise _malformed(f"the body is not JSON: {exc.msg} at position {exc.pos}") from None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise _malformed(f"the body is not acceptable JSON: {reason}") from None


class _Rejected(Exception):  # noqa: N818 - internal control flow, never leaves the module
    """An event of a request failed a check: its field errors, and whether it was the role."""

    def __init__(self, errors: Sequence[FieldError], *, forbidden: bool = False) -> None:
        super().__init__(f"{len(errors)} problem(s)")
        self.errors = list(errors)
        self.forbidden = forbidden


@contextlib.contextmanager
def _forbidden_as_rejection(pointer: str) -> Iterator[None]:
    """Turn an authorization refusal into a rejection located in the request body."""
    try:
        yield
    except ForbiddenError as exc:
        raise _Rejected(
            [FieldError(exc.location or pointer or "/", str(exc))], forbidden=True
        ) from None


def _check_attribute_names(document: Mapping[str, Any], pointer: str) -> None:
    """Only the core context attributes: extensions would travel unsealed in Kafka headers."""
    unknown = [
        FieldError(
            pointer + _pointer([name]),
            "binary data (data_base64) is not accepted; send data as JSON"
            if name == "data_base64"
            else "extension attributes are not accepted (they would travel unsealed in "
            "Kafka headers)",
        )
        for name in document
        if name not in _ENVELOPE_FIELDS
    ]
    if unknown:
        raise _Rejected(unknown)


# ------------------------------------------------------------------- publisher


@dataclass(frozen=True)
class Delivery:
    """Where the broker put an acknowledged record."""

    topic: str
    partition: int
    offset: int


class Publisher(Protocol):
    """What the intake needs from Kafka: enqueue a record, learn when it is acknowledged.

    :meth:`submit` returns at once (so records of a batch keep their order);
    the awaitable resolves with the :class:`Delivery` once the broker
    acknowledged, or raises :class:`BrokerUnavailableError`.
    """

    async def start(self) -> None:
        """Connect (called once the event loop runs)."""

    async def close(self) -> None:
        """Deliver what is queued (within a bound) and disconnect."""

    def submit(self, record: EncodedRecord) -> Awaitable[Delivery]:
        """Enqueue ``record``; raise :class:`BrokerUnavailableError` if it cannot even queue."""
        ...

    async def ready(self) -> bool:
        """False when the broker is known to be down right now (answer 503 without trying)."""
        ...

    async def probe(self) -> bool:
        """Ask the broker for metadata: is it reachable? (cheap, cached briefly)."""
        ...


def _settle(future: asyncio.Future[Delivery], error: KafkaError | None, where: Delivery) -> None:
    """Resolve a delivery future on the event loop (it may have timed out meanwhile)."""
    if future.done():
        return
    if error is None:
        future.set_result(where)
    else:
        future.set_exception(
            BrokerUnavailableError(f"the broker did not acknowledge the record ({error.name()})")
        )


class KafkaPublisher:
    """:class:`Publisher` over confluent-kafka with ``acks=all`` and idempotence.

    A daemon thread polls the producer, so delivery reports arrive while the
    event loop stays free; each report settles its asyncio future through
    ``call_soon_threadsafe``. ``message.timeout.ms`` is the publish timeout,
    so librdkafka itself reports a record it could not deliver in time.

    "All brokers down" reports from librdkafka mark the broker as down:
    requests then get 503 at once, after one metadata probe per second at
    most, instead of each waiting out the timeout. A fatal producer error
    (e.g. the idempotent producer's sequence is broken) replaces the producer.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        timeout_s: float,
        probe_timeout_s: float = 2.0,
        probe_ttl_s: float = 1.0,
    ) -> None:
        """Prepare the configuration; nothing connects before :meth:`start`."""
        self._config = producer_config(
            kafka,
            **{
                "client.id": f"{kafka.client_id}-intake",
                "message.timeout.ms": max(1, int(timeout_s * 1000)),
                # Never create a topic by writing to it: only provisioning does that.
                "allow.auto.create.topics": False,
                # Come back within a second of the broker, not after ten.
                "reconnect.backoff.max.ms": 1000,
                "error_cb": self._on_error,
                "logger": _librdkafka_log,
            },
        )
        self._probe_timeout_s = probe_timeout_s
        self._probe_ttl_s = probe_ttl_s
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._down = False
        self._fatal: KafkaError | None = None
        self._logged: dict[int, float] = {}
        self._probe_lock = asyncio.Lock()
        self._probed_at = -math.inf
        self._probe_ok = False

    async def start(self) -> None:
        """Create the producer and start the poll thread."""
        if self._producer is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._producer = Producer(self._config)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._poll_forever, name="intake-kafka-poll", daemon=True
        )
        self._thread.start()

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's global errors (poll thread): remember outages and fatal errors.

        librdkafka repeats a connection error on every retry (many a second
        while a broker is down), so each kind is logged at most every 10 s.
        """
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._down = True
        if error.fatal():
            self._fatal = error
        now = time.monotonic()
        if error.fatal() or now - self._logged.get(error.code(), -math.inf) >= 10.0:
            self._logged[error.code()] = now
            _log.warning("intake.kafka_error", code=error.name(), fatal=error.fatal())

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            producer = self._producer
            if producer is None:
                return
            producer.poll(0.1)
            if self._fatal is not None:
                self._replace_producer()

    def _replace_producer(self) -> None:
        """After a fatal error the producer refuses everything; fail its records, start anew."""
        old = self._producer
        _log.error("intake.producer_replaced", code=self._fatal.name() if self._fatal else None)
        self._fatal = None
        self._producer = Producer(self._config)
        if old is not None:
            old.purge()
            old.poll(0)

    def submit(self, record: EncodedRecord) -> asyncio.Future[Delivery]:
        """Enqueue ``record``; the future resolves on the broker's ack."""
        loop, producer = self._loop, self._producer
        if loop is None or producer is None:
            raise BrokerUnavailableError("the publisher is not started")
        future: asyncio.Future[Delivery] = loop.create_future()

        def on_delivery(error: KafkaError | None, message: Any) -> None:
            if error is None:
                self._down = False
            where = Delivery(message.topic(), message.partition(), message.offset())
            # RuntimeError: the loop closed during shutdown; nobody waits any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, error, where)

        headers: list[tuple[str, str | bytes | None]] = list(record.headers)
        try:
            producer.produce(
                record.topic,
                value=record.value,
                key=record.key,
                headers=headers,
                on_delivery=on_delivery,
            )
        except BufferError:
            raise BrokerUnavailableError("the producer's queue is full") from None
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            name = error.name() if isinstance(error, KafkaError) else type(exc).__name__
            raise BrokerUnavailableError(f"the record could not be queued ({name})") from None
        return future

    async def ready(self) -> bool:
        """True unless librdkafka reported every broker down and a probe confirms it."""
        if not self._down:
            return True
        return await self.probe()

    async def probe(self) -> bool:
        """One metadata request (in a thread), at most once per ``probe_ttl_s``."""
        async with self._probe_lock:
            if time.monotonic() - self._probed_at < self._probe_ttl_s:
                return self._probe_ok
            ok = await asyncio.to_thread(self._metadata_ok)
            self._probed_at, self._probe_ok = time.monotonic(), ok
            if ok:
                self._down = False
            return ok

    def _metadata_ok(self) -> bool:
        producer = self._producer
        if producer is None:
            return False
        try:
            metadata = producer.list_topics(timeout=self._probe_timeout_s)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop polling, deliver what is queued (up to ``timeout_s``), let go of the producer."""
        producer, thread = self._producer, self._thread
        if producer is None:
            return
        self._stop.set()
        if thread is not None:
            await asyncio.to_thread(thread.join)
        remaining = await asyncio.to_thread(producer.flush, timeout_s)
        if remaining:
            _log.warning("intake.unflushed_records", count=remaining)
        self._producer = None


# --------------------------------------------------------------------- service


@dataclass(frozen=True)
class _Item:
    """One validated event of a request, ready to publish."""

    index: int
    pointer: str
    """JSON Pointer of the event in the body: "" for structured, "/3" in a batch."""
    ce_id: str
    source: str
    event: Event
    record: EncodedRecord
    digest: str

    @property
    def key(self) -> tuple[str, str]:
        """The idempotency key."""
        return (self.source, self.ce_id)


@dataclass
class _Outcome:
    """What became of the unique events of one request."""

    receipts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    replayed: set[tuple[str, str]] = field(default_factory=set)


class IntakeService:
    """The request handling behind the routes: validate, authorize, deduplicate, publish."""

    def __init__(
        self,
        settings: IntakeSettings,
        kafka: KafkaSettings,
        *,
        publisher: Publisher,
        keys: ApiKeyStore,
        store: IdempotencyStore,
        router_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Wire the parts; each is built by :func:`create_app` or passed by a test."""
        self.settings = settings
        self.kafka = kafka
        self.publisher = publisher
        self.keys = keys
        self.store = store
        self._router_transport = router_transport
        self.router = self._router_client()
        self.codec = Codec(kafka, source=INTAKE_SOURCE, max_record_bytes=MAX_RECORD_BYTES)
        namespace = kafka.topic_namespace
        self.topic_of = {
            **dict.fromkeys(AGENCY_EVENTS, f"{namespace}.intake.v1"),
            **dict.fromkeys(PROVIDER_ANSWERS, f"{namespace}.provider-responses.v1"),
        }
        self.locks = KeyedLocks()
        self.in_flight = 0

    def _router_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self._router_transport, follow_redirects=True)

    async def open(self) -> None:
        """Start serving: open what :meth:`close` closed (a lifespan may run more than once)."""
        self.store.open()
        if self.router.is_closed:
            self.router = self._router_client()
        await self.publisher.start()
        _log.info(
            "intake.started",
            bootstrap=self.kafka.bootstrap_servers,
            namespace=self.kafka.topic_namespace,
            keys=len(self.keys.entries),
        )

    async def close(self) -> None:
        """Stop serving: deliver what is queued, then let go of every connection."""
        await self.publisher.close()
        await self.router.aclose()
        self.store.close()

    # ------------------------------------------------------------ authentication

    def authenticate(self, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        """The caller, or 401 with ``WWW-Authenticate: Bearer``."""
        if credentials is None or not credentials.credentials:
            raise ProblemError(
                401,
                "unauthenticated",
                "Authentication required",
                "send an API key as Authorization: Bearer <key>",
                headers={"WWW-Authenticate": 'Bearer realm="safepassage"'},
            )
        principal = self.keys.authenticate(credentials.credentials)
        if principal is None:
            _log.info("intake.unauthenticated", key_id=key_id_of(credentials.credentials))
            raise ProblemError(
                401,
                "unauthenticated",
                "Invalid API key",
                "the API key is unknown or was revoked",
                headers={"WWW-Authenticate": 'Bearer realm="safepassage", error="invalid_token"'},
            )
        return principal

    # --------------------------------------------------------------- validation

    def _item(self, principal: Principal, document: Any, index: int, pointer: str) -> _Item:
        """One CloudEvent checked, or :class:`_Rejected` with every problem found at the step.

        Steps run from the cheapest; the role's right to the event type is
        checked before the data, so a caller learns nothing about the models
        of events it may not send.
        """
        if not isinstance(document, dict):
            raise _Rejected([FieldError(pointer, "a CloudEvent must be a JSON object")])
        _check_attribute_names(document, pointer)
        try:
            envelope = _Envelope.model_validate(document)
        except ValidationError as exc:
            raise _Rejected(_pydantic_errors(exc, pointer)) from None
        model = MODELS.get(envelope.type)
        if model is None or envelope.type not in PUBLISHABLE:
            reason = (
                "unknown event type"
                if model is None
                else "this event type is published by the platform itself, not through intake"
            )
            accepted = ", ".join(sorted(PUBLISHABLE))
            raise _Rejected([FieldError(f"{pointer}/type", f"{reason}; accepted: {accepted}")])
        with _forbidden_as_rejection(pointer):
            authorize_event_type(principal, envelope.type, f"{pointer}/type")
        data, errors = _decode_sealed(envelope.type, envelope.data, f"{pointer}/data")
        if errors:
            raise _Rejected(errors)
        try:
            event = model.model_validate(data)
        except ValidationError as exc:
            raise _Rejected(_pydantic_errors(exc, f"{pointer}/data")) from None
        errors = self._agreement(envelope, event, pointer)
        if errors:
            raise _Rejected(errors)
        with _forbidden_as_rejection(pointer):
            authorize_event(principal, event, f"{pointer}/data")
        try:
            record = self.codec.encode(
                event, self.topic_of[envelope.type], event_id=envelope.id, source=envelope.source
            )
        except EncodeError as exc:
            raise _Rejected([FieldError(f"{pointer}/data", str(exc))]) from None
        digest = fingerprint(principal.name, document)
        return _Item(index, pointer, envelope.id, envelope.source, event, record, digest)

    @staticmethod
    def _agreement(envelope: _Envelope, event: Event, pointer: str) -> list[FieldError]:
        """``time`` and ``subject`` are routing metadata: they must say what the data says."""
        errors = []
        try:
            moment = utc_millis(datetime.fromisoformat(envelope.time.upper()))
        except ValueError:
            errors.append(FieldError(f"{pointer}/time", "not a valid RFC 3339 date and time"))
        else:
            if moment != event.occurred_at:
                errors.append(
                    FieldError(
                        f"{pointer}/time", "must equal data.occurred_at (to the millisecond)"
                    )
                )
        if envelope.subject is not None:
            try:
                same = UUID(envelope.subject) == event.subject
            except ValueError:
                same = False
            if not same:
                errors.append(
                    FieldError(
                        f"{pointer}/subject",
                        "must be the event's subject (the survivor id) or absent",
                    )
                )
        return errors

    def validate(self, principal: Principal, documents: Sequence[Any], batch: bool) -> list[_Item]:
        """Every event checked before anything is published: all or nothing.

        403 if any event is not the caller's to send, else 400 if any is
        invalid; both list every offending event by its JSON Pointer.
        """
        items: list[_Item] = []
        invalid: list[FieldError] = []
        forbidden: list[FieldError] = []
        for index, document in enumerate(documents):
            try:
                items.append(self._item(principal, document, index, f"/{index}" if batch else ""))
            except _Rejected as rejection:
                (forbidden if rejection.forbidden else invalid).extend(rejection.errors)
        if forbidden:
            raise ProblemError(
                403,
                "forbidden",
                "Not allowed for this principal",
                forbidden[0].message
                if len(forbidden) == 1
                else f"{len(forbidden)} events are not allowed; see errors",
                errors=forbidden,
            )
        first: dict[tuple[str, str], _Item] = {}
        for item in items:
            earlier = first.setdefault(item.key, item)
            if earlier is not item and earlier.digest != item.digest:
                invalid.append(
                    FieldError(
                        f"{item.pointer}/id",
                        f"repeats the source and id of event {earlier.index} with other content",
                    )
                )
        if invalid:
            raise _invalid(invalid)
        return items

    # --------------------------------------------------------------- publishing

    async def accept(self, principal: Principal, items: Sequence[_Item]) -> tuple[list[Any], bool]:
        """Publish what is new, replay what was acknowledged before; receipts in order."""
        first: dict[tuple[str, str], _Item] = {}
        for item in items:
            first.setdefault(item.key, item)
        unique = list(first.values())  # in the order sent: per-survivor order is kept
        if self.in_flight + len(unique) > self.settings.max_in_flight:
            raise ProblemError(
                429,
                "too-many-in-flight",
                "Too many events in flight",
                f"more than {self.settings.max_in_flight} events are being published; retry",
                headers={"Retry-After": "1"},
            )
        self.in_flight += len(unique)
        # Shielded: a client that hangs up must not leave its claims pending; the
        # publish runs to its end, holding its locks and in-flight places until then.
        outcome = await asyncio.shield(self._accept_unique(principal, unique))
        receipts = [outcome.receipts[item.key] for item in items]
        replayed = bool(unique) and all(item.key in outcome.replayed for item in unique)
        return receipts, replayed

    async def _accept_unique(self, principal: Principal, unique: list[_Item]) -> _Outcome:
        try:
            async with self.locks.hold(item.key for item in unique):
                return await self._claim_and_publish(principal, unique)
        finally:
            self.in_flight -= len(unique)

    async def _claim_and_publish(self, principal: Principal, unique: list[_Item]) -> _Outcome:
        """Claim every key; replay, conflict or publish; record the outcome in the store."""
        outcome = _Outcome()
        claims = await asyncio.to_thread(self._claim_all, unique)
        conflicts = [
            FieldError(f"{item.pointer}/id", "this source and id were used for another event")
            for item, claim in zip(unique, claims, strict=True)
            if claim.outcome is ClaimOutcome.CONFLICT
        ]
        busy = any(claim.outcome is ClaimOutcome.IN_PROGRESS for claim in claims)
        new = [
            (item, claim.token)
            for item, claim in zip(unique, claims, strict=True)
            if claim.outcome is ClaimOutcome.NEW and claim.token is not None
        ]
        if conflicts or busy:
            await asyncio.to_thread(self._release_all, new)
            if conflicts:
                raise ProblemError(
                    409,
                    "idempotency-conflict",
                    "Event id already used",
                    "an event with this source and id was accepted with different content "
                    "(or from another principal); use a new id for a new event",
                    errors=conflicts,
                )
            raise ProblemError(
                409,
                "in-progress",
                "Event is being published",
                "another request is publishing this event right now; retry shortly",
                headers={"Retry-After": "1"},
            )
        for item, claim in zip(unique, claims, strict=True):
            if claim.outcome is ClaimOutcome.REPLAY and claim.response is not None:
                outcome.receipts[item.key] = dict(claim.response)
                outcome.replayed.add(item.key)
                self._log_accepted(principal, item, outcome.receipts[item.key], replayed=True)
        if not new:
            return outcome
        if not await self.publisher.ready():
            # Known down: answer at once instead of waiting out the publish timeout.
            # Acknowledged events were replayed above: they are on Kafka whatever now.
            await asyncio.to_thread(self._release_all, new)
            raise _broker_unavailable("Kafka cannot be reached; nothing was published")
        deliveries = await self._publish([item for item, _ in new])
        acked: list[tuple[_Item, str, dict[str, Any]]] = []
        failed: list[tuple[_Item, str]] = []
        for (item, token), delivery in zip(new, deliveries, strict=True):
            if isinstance(delivery, Delivery):
                receipt = Receipt(
                    id=item.ce_id,
                    source=item.source,
                    type=item.event.event_type,
                    topic=delivery.topic,
                    partition=delivery.partition,
                    offset=delivery.offset,
                ).model_dump()
                acked.append((item, token, receipt))
                outcome.receipts[item.key] = receipt
                self._log_accepted(principal, item, receipt, replayed=False)
            else:
                failed.append((item, token))
                _log.warning(
                    "intake.not_acknowledged",
                    ce_id=item.ce_id,
                    ce_type=item.event.event_type,
                    principal=principal.name,
                    role=principal.role.value,
                    reason=str(delivery),
                )
        await asyncio.to_thread(self._settle_claims, acked, failed)
        if failed:
            accepted = [
                outcome.receipts[item.key] for item in unique if item.key in outcome.receipts
            ]
            raise _broker_unavailable(
                f"Kafka did not acknowledge {len(failed)} of {len(unique)} events; retry them "
                "all (the acknowledged ones will not be published again)",
                accepted=accepted,
            )
        return outcome

    async def _publish(self, items: Sequence[_Item]) -> list[Delivery | BaseException]:
        """Enqueue in order (per-survivor order is kept), then await every ack."""
        timeout = self.settings.publish_timeout_s + 2.0
        pending: list[Awaitable[Delivery] | BaseException] = []
        for item in items:
            try:
                pending.append(self.publisher.submit(item.record))
            except BrokerUnavailableError as exc:
                pending.append(exc)

        async def settle(entry: Awaitable[Delivery] | BaseException) -> Delivery:
            if isinstance(entry, BaseException):
                raise entry
            try:
                return await asyncio.wait_for(entry, timeout)
            except TimeoutError:
                raise BrokerUnavailableError("no acknowledgement within the timeout") from None

        results = await asyncio.gather(
            *(settle(entry) for entry in pending), return_exceptions=True
        )
        return list(results)

    def _claim_all(self, items: Sequence[_Item]) -> list[Claim]:
        """Claim each key; on a store failure, release what this request claimed."""
        claims: list[Claim] = []
        try:
            for item in items:
                claims.append(self.store.claim(item.key, item.digest))
        except IdempotencyStoreError:
            self._release_all(
                [
                    (item, claim.token)
                    for item, claim in zip(items, claims, strict=False)
                    if claim.outcome is ClaimOutcome.NEW and claim.token is not None
                ]
            )
            raise
        return claims

    def _release_all(self, claimed: Sequence[tuple[_Item, str]]) -> None:
        """Give claims back after a failure, so that the retry can publish."""
        for item, token in claimed:
            self.store.release(item.key, token)

    def _settle_claims(
        self,
        acked: Sequence[tuple[_Item, str, dict[str, Any]]],
        failed: Sequence[tuple[_Item, str]],
    ) -> None:
        """Record receipts of acknowledged events; release the claims of the others."""
        for item, token, receipt in acked:
            self.store.ack(item.key, token, receipt)
        self._release_all(failed)

    @staticmethod
    def _log_accepted(
        principal: Principal, item: _Item, receipt: Mapping[str, Any], *, replayed: bool
    ) -> None:
        _log.info(
            "intake.accepted",
            ce_id=item.ce_id,
            ce_type=item.event.event_type,
            principal=principal.name,
            role=principal.role.value,
            topic=receipt["topic"],
            partition=receipt["partition"],
            offset=receipt["offset"],
            replayed=replayed,
        )

    # ------------------------------------------------------------------- status

    async def survivor_status(self, principal: Principal, survivor_id: str) -> Response:
        """Forward an operator's status read to a router worker; its status and body as they are.

        The role is checked before the id, so that other roles learn nothing
        from the answer; the id is parsed here, not by FastAPI, for that order.
        """
        _operators_only(principal)
        try:
            survivor = UUID(survivor_id)
        except ValueError:
            raise ProblemError(
                400,
                "invalid-request",
                "Invalid request",
                "the survivor id must be a UUID",
                errors=[FieldError("path:survivor_id", "must be a UUID")],
            ) from None
        base = self.settings.router_status_url.rstrip("/")
        url = f"{base}/v1/survivors/{survivor}/status"
        try:
            answer = await self.router.get(url, timeout=self.settings.router_timeout_s)
        except (httpx.ConnectError, httpx.TimeoutException) as exc:
            _log.warning("intake.router_unreachable", reason=type(exc).__name__)
            raise ProblemError(
                503,
                "router-unavailable",
                "Router unavailable",
                "no router worker answered; retry shortly",
                headers={"Retry-After": "5"},
            ) from None
        except httpx.HTTPError as exc:
            _log.warning("intake.router_bad_answer", reason=type(exc).__name__)
            raise ProblemError(
                502,
                "router-bad-gateway",
                "Bad answer from the router",
                "the router worker's answer could not be read",
            ) from None
        _log.info(
            "intake.status_read",
            principal=principal.name,
            role=principal.role.value,
            survivor_id=str(survivor),
            status=answer.status_code,
        )
        media_type = answer.headers.get("content-type", "application/json")
        return Response(answer.content, status_code=answer.status_code, media_type=media_type)


def _operators_only(principal: Principal) -> None:
    """403 problem unless the principal is an operator."""
    try:
        authorize_status_read(principal)
    except ForbiddenError as exc:
        raise ProblemError(403, "forbidden", "Not allowed for this principal", str(exc)) from None


# ------------------------------------------------------------------------- app

_RESPONSE_DOCS: dict[int, str] = {
    400: "Malformed JSON or invalid event(s); errors locate each problem.",
    401: "Missing or invalid API key.",
    403: "The principal's role does not allow this.",
    409: "The source and id were used for another event, or it is being published.",
    413: "Body larger than the limit.",
    415: "Not a CloudEvents structured or batch media type.",
    429: "Too many events in flight; retry after Retry-After seconds.",
    502: "The router worker gave an unreadable answer.",
    503: "Kafka (or the router) is unavailable; nothing was accepted that was not acknowledged.",
}


def _problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    schema = {"$ref": "#/components/schemas/ProblemDetails"}
    return {
        status: {
            "description": _RESPONSE_DOCS[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
        }
        for status in statuses
    }


def _request_body_docs(max_batch_items: int) -> dict[str, Any]:
    event_schema = {"$ref": "#/components/schemas/CloudEvent"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                STRUCTURED_MEDIA_TYPE: {"schema": event_schema},
                BATCH_MEDIA_TYPE: {
                    "schema": {"type": "array", "items": event_schema, "maxItems": max_batch_items}
                },
            },
        }
    }


def _component_schemas() -> dict[str, Any]:
    """JSON Schemas of the documented models and of one CloudEvent per accepted type."""
    envelopes = {
        event_type: _envelope_schema_model(event_type, MODELS[event_type])
        for event_type in sorted(PUBLISHABLE)
    }
    models: list[type[BaseModel]] = [ProblemDetails, Receipt, BatchReceipt, Health]
    _, document = models_json_schema(
        [(model, "validation") for model in [*models, *envelopes.values()]],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = document["$defs"]
    schemas["CloudEvent"] = {
        "description": "A CloudEvent the intake accepts; data is the event model of its type.",
        "oneOf": [{"$ref": f"#/components/schemas/{m.__name__}"} for m in envelopes.values()],
        "discriminator": {
            "propertyName": "type",
            "mapping": {t: f"#/components/schemas/{m.__name__}" for t, m in envelopes.items()},
        },
    }
    sealed = schemas.get("Sealed")
    if sealed is not None:
        sealed["properties"]["ciphertext"] = {
            "type": "string",
            "contentEncoding": "base64",
            "description": "The sealed bytes, base64 (RFC 4648, padded).",
        }
    return schemas


_DESCRIPTION = """\
Agencies and providers publish CloudEvents 1.0 (HTTP binding, structured and
batch content modes) to SafePassage. A 202 answer means every event is on
Kafka, acknowledged by all in-sync replicas. Retrying with the same
CloudEvents `source` and `id` is safe: the event is published once and the
retry gets the same receipt. Errors are RFC 9457 problem documents. See
docs/intake-api.md for roles, the error catalogue and examples.
"""


def create_app(
    settings: IntakeSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    publisher: Publisher | None = None,
    keys: ApiKeyStore | None = None,
    router_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The intake API as an ASGI app.

    Everything is built here, so start-up problems (keys file, state folder)
    surface at once; the publisher connects when the app starts serving.
    ``publisher``, ``keys`` and ``router_transport`` replace the real edges
    (Kafka, the keys file, the router's HTTP server) in tests.
    """
    settings = settings or IntakeSettings()
    kafka = kafka or KafkaSettings()
    keys = keys or ApiKeyStore(settings.api_keys_file)
    store = IdempotencyStore(
        settings.state_dir / "idempotency.sqlite3",
        ttl=settings.idempotency_ttl,
        lease=settings.idempotency_lease,
        max_entries=settings.idempotency_max_entries,
    )
    publisher = publisher or KafkaPublisher(kafka, timeout_s=settings.publish_timeout_s)
    service = IntakeService(
        settings,
        kafka,
        publisher=publisher,
        keys=keys,
        store=store,
        router_transport=router_transport,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.open()
        try:
            yield
        finally:
            await service.close()

    try:
        version = importlib.metadata.version("safepassage")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    app = FastAPI(
        title="SafePassage intake API",
        version=version,
        description=_DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.service = service
    _add_routes(app, service)
    _install_error_handlers(app)
    _install_openapi(app)
    return app


async def _documents(request: Request, settings: IntakeSettings) -> tuple[list[Any], bool]:
    """The CloudEvent documents of a request and whether it was a batch (415/413/400 else)."""
    media_type = _media_type(request)
    body = await _read_body(request, settings.max_body_bytes)
    document = _parse_json(body)
    if media_type != BATCH_MEDIA_TYPE:
        if not isinstance(document, dict):
            raise _malformed("a structured CloudEvent must be a JSON object")
        return [document], False
    if not isinstance(document, list):
        raise _malformed("a batch must be a JSON array of CloudEvents")
    if len(document) > settings.max_batch_items:
        raise ProblemError(
            413,
            "payload-too-large",
            "Batch too large",
            f"a batch holds at most {settings.max_batch_items} events",
        )
    return document, True


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="sp_<role>_<random>",
    description="An API key from `safepassage keys add`.",
)


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated principal of a request (401 problem otherwise)."""
    service: IntakeService = request.app.state.service
    return service.authenticate(credentials)


Caller = Annotated[Principal, Depends(_caller)]
"""A route parameter that authenticates the request."""


def _add_routes(app: FastAPI, service: IntakeService) -> None:
    """POST /v1/events, the operators' status read and /healthz."""
    settings, publisher = service.settings, service.publisher

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=None,
        summary="Publish one CloudEvent (structured mode) or a batch",
        responses={
            202: {
                "description": "Every event is on Kafka; one receipt each.",
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/Receipt"},
                                {"$ref": "#/components/schemas/BatchReceipt"},
                            ]
                        }
                    }
                },
            },
            **_problem_responses(400, 401, 403, 409, 413, 415, 429, 503),
        },
        openapi_extra=_request_body_docs(settings.max_batch_items),
    )
    async def publish_events(request: Request, principal: Caller) -> JSONResponse:
        """Validate every event, publish it to its topic, answer 202 once Kafka acknowledged."""
        if principal.role is Role.OPERATOR:
            raise ProblemError(
                403,
                "forbidden",
                "Not allowed for this principal",
                "operators read status and do not publish events",
            )
        documents, batch = await _documents(request, settings)
        items = service.validate(principal, documents, batch)
        receipts, replayed = await service.accept(principal, items)
        content: Any = {"accepted": receipts} if batch else receipts[0]
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JSONResponse(content, status_code=202, headers=headers)

    @app.get(
        "/v1/survivors/{survivor_id}/status",
        response_model=None,
        summary="A survivor's case status, from a router worker (operators only)",
        responses={
            200: {"description": "The router's status view, forwarded as it is."},
            404: {"description": "The router knows no case for this survivor id."},
            **_problem_responses(400, 401, 403, 502, 503),
        },
    )
    async def survivor_status(
        survivor_id: Annotated[str, PathParam(json_schema_extra={"format": "uuid"})],
        principal: Caller,
    ) -> Response:
        """Forward to a router worker; its status code and body are passed on unchanged."""
        return await service.survivor_status(principal, survivor_id)

    @app.get(
        "/healthz",
        response_model=None,
        summary="Whether the service can reach Kafka (no authentication)",
        responses={
            200: {
                "description": "Kafka answered a metadata request.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                },
            },
            **_problem_responses(503),
        },
    )
    async def healthz() -> JSONResponse:
        """A metadata request to Kafka, cached for a second; 503 problem when it fails."""
        if await publisher.probe():
            return JSONResponse({"status": "ok", "broker": "reachable"})
        raise _broker_unavailable("Kafka did not answer a metadata request", broker="unreachable")


def _install_openapi(app: FastAPI) -> None:
    """/openapi.json with the CloudEvent, receipt and problem schemas the routes refer to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                _component_schemas()
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _install_error_handlers(app: FastAPI) -> None:
    """Every error answer is problem+json; FastAPI's 422 becomes a 400."""

    def log_rejection(request: Request, problem: ProblemError) -> None:
        level = "warning" if problem.status >= 500 else "info"
        getattr(_log, level)(
            "intake.rejected",
            method=request.method,
            route=request.scope.get("route").path  # type: ignore[union-attr]
            if request.scope.get("route") is not None
            else None,
            status=problem.status,
            problem=problem.slug,
            errors=len(problem.errors),
        )

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)  # noqa: S101 - registered for Problem only
        log_rejection(request, exc)
        return exc.response(request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        errors = []
        for item in exc.errors():
            where, *rest = item.get("loc", ()) or ("request",)
            location = _pointer(rest) if where == "body" else f"{where}:{'/'.join(map(str, rest))}"
            errors.append(FieldError(location, str(item.get("msg", "invalid"))))
        problem = ProblemError(
            400,
            "invalid-request",
            "Invalid request",
            "the request's parameters are invalid; see errors",
            errors=errors,
        )
        log_rejection(request, problem)
        return problem.response(request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        slugs = {404: "not-found", 405: "method-not-allowed"}
        problem = ProblemError(
            exc.status_code,
            slugs.get(exc.status_code, "http-error"),
            str(exc.detail) if exc.status_code not in slugs else _status_title(exc.status_code),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )
        return problem.response(request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # The message of a foreign exception could quote request data: type only.
        _log.error("intake.internal_error", error=type(exc).__name__, path=request.url.path)
        problem = ProblemError(500, "internal", "Internal error", "the error was logged")
        return problem.response(request.url.path)

    async def on_store(request: Request, exc: Exception) -> Response:
        _log.error("intake.store_failed", error=str(exc))
        problem = ProblemError(
            503,
            "state-unavailable",
            "Idempotency store unavailable",
            "the service cannot record events right now; nothing was published",
            headers={"Retry-After": "5"},
        )
        return problem.response(request.url.path)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(IdempotencyStoreError, on_store)
    app.add_exception_handler(Exception, on_unexpected)


def _status_title(status: int) -> str:
    return HTTPStatus(status).phrase


# ------------------------------------------------------------------ runner, CLI


def serve(settings: IntakeSettings | None = None, kafka: KafkaSettings | None = None) -> None:
    """Run the intake API in the foreground with uvicorn until interrupted.

    Logging is left as :func:`streams.logs.configure_logging` set it up
    (``log_config=None``), so uvicorn's lines come out as the same JSON.
    """
    settings = settings or IntakeSettings()
    app = create_app(settings, kafka=kafka or KafkaSettings())
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=int(settings.publish_timeout_s) + 5,
    )


P = ParamSpec("P")
R = TypeVar("R")


def _friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Start-up and key-file errors as one line and exit code 1, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ConnectorsError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            click.echo(f"error: invalid settings: {problems}", err=True)
            sys.exit(1)

    return wrapper


def register(main_group: click.Group) -> None:
    """Add ``intake serve`` and ``keys add`` to the ``safepassage`` command line."""

    @main_group.group("intake")
    def intake() -> None:
        """The HTTP intake API for agencies and providers."""

    @intake.command("serve")
    @click.option("--host", default=None, help="Interface (default SAFEPASSAGE_INTAKE_HOST).")
    @click.option("--port", type=int, default=None, help="Port (default SAFEPASSAGE_INTAKE_PORT).")
    @_friendly
    def intake_serve(host: str | None, port: int | None) -> None:
        """Serve POST /v1/events, the operators' status read, /healthz and /docs."""
        overrides = {name: value for name, value in (("host", host), ("port", port)) if value}
        serve(IntakeSettings(**overrides))  # type: ignore[arg-type]

    @main_group.group("keys")
    def keys() -> None:
        """API keys of the intake API (only their hashes are stored)."""

    @keys.command("add")
    @click.option(
        "--role", type=click.Choice([role.value for role in Role]), required=True, help="Role."
    )
    @click.option("--principal", required=True, help="Name of the caller, no spaces (logged).")
    @click.option("--provider-id", type=click.UUID, default=None, help="Providers: their id.")
    @click.option("--agency-id", default=None, help="Agencies: the agency_id of their events.")
    @_friendly
    def keys_add(
        role: str, principal: str, provider_id: UUID | None, agency_id: str | None
    ) -> None:
        """Create a key, store its hash, print the key once (on stdout, alone)."""
        path = IntakeSettings().api_keys_file
        key, entry = add_key(
            path,
            role=Role(role),
            principal=principal,
            provider_id=provider_id,
            agency_id=agency_id,
            now=datetime.now(UTC),
        )
        click.echo(key)
        click.echo(
            f"added {entry.key_id} for {entry.principal} ({entry.role.value}) to {path}; "
            "this key is shown only now, store it safely",
            err=True,
        )
