"""CloudEvents 1.0 on SafePassage's wires: Kafka binary mode, HTTP structured and batch JSON.

* **Kafka, binary mode** (every topic): the seven :data:`REQUIRED_HEADERS`,
  UTF-8; the value is the codec's Avro. :func:`binary_headers` writes them;
  :func:`read_headers`, :func:`envelope` and :func:`check_agreement` read them.
* **HTTP** (``POST /v1/events``): one event as ``application/cloudevents+json``
  or a JSON array (``application/cloudevents-batch+json``). The SDKs write them
  (:func:`structured`, :func:`batch`); the intake reads them
  (:class:`StructuredEvent`, :func:`unknown_attributes`, :func:`sealed_from_json`).

On both, ``time`` must be the event's ``occurred_at`` to the millisecond and
``subject`` its subject (:func:`disagreements`).

**Writing uses the CloudEvents SDK** (``cloudevents.core`` 2.2; the 1.x API is
not used). It has no batch format, and writes ``time`` with ``isoformat()``:
:class:`_MillisecondTime` keeps the milliseconds every record has carried.

**Reading is hand-written**, because the SDK (2.2.0) is lenient where
SafePassage must be strict, and its errors are not the ones needed here:

* ``CloudEvent`` fills in a missing ``id`` (a fresh uuid4), ``specversion`` and
  ``time``: idempotency on (source, id) would be lost. Here it is
  :class:`MissingHeader`.
* The Kafka binding takes headers as a dict, so a repeated header keeps its
  last value (refused here as ambiguous), and a non-UTF-8 value raises a bare
  ``UnicodeDecodeError`` that names no header.
* ``time`` goes through dateutil's ``isoparse``: ISO 8601 forms that RFC 3339
  forbids (a date alone, week dates) pass.
* Other ``ce_`` headers, and ``data_base64`` and extensions in JSON, become
  attributes that would travel unsealed in Kafka headers.
* One ``CloudEventValidationError`` for every failure, where dead letters need a
  :class:`~streams.exceptions.DecodeError` class and the intake field errors by
  JSON Pointer.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal, get_args

from cloudevents.core.bindings import common, http, kafka
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, create_model

from schemas.models import MODELS, Event
from schemas.types import Sealed, utc_millis
from streams.exceptions import EncodeError, InvalidHeader, MissingHeader

__all__ = [
    "AVRO_MEDIA_TYPE",
    "BATCH_MEDIA_TYPE",
    "CE_ID",
    "CE_SOURCE",
    "CE_SPECVERSION",
    "CE_SUBJECT",
    "CE_TIME",
    "CE_TYPE",
    "CONTENT_TYPE_HEADER",
    "ID_PATTERN",
    "PARTY_ID_MESSAGE",
    "PARTY_ID_PATTERN",
    "REQUIRED_HEADERS",
    "SPECVERSION",
    "STRUCTURED_MEDIA_TYPE",
    "Envelope",
    "Headers",
    "RoutingAttribute",
    "StructuredEvent",
    "batch",
    "binary_headers",
    "check_agreement",
    "disagreements",
    "documented_model",
    "envelope",
    "event_data",
    "is_party_id",
    "parse_time",
    "read_headers",
    "rfc3339",
    "sealed_fields",
    "sealed_from_json",
    "shown",
    "structured",
    "unknown_attributes",
]

SPECVERSION: Final = "1.0"
STRUCTURED_MEDIA_TYPE: Final = JSONFormat.CONTENT_TYPE
"""``application/cloudevents+json``: one event, structured mode."""
BATCH_MEDIA_TYPE: Final = "application/cloudevents-batch+json"
"""A JSON array of structured events (the SDK has no batch format)."""
_JSON_DATA_TYPE: Final = JSONFormat.DEFAULT_CONTENT_TYPE
"""``datacontenttype`` of a structured event's ``data``: ``application/json``."""
AVRO_MEDIA_TYPE: Final = "application/avro"
"""``content-type`` of every Kafka record (binary mode: the value is the data)."""

CE_ID: Final = f"{kafka.CE_PREFIX}id"
CE_SOURCE: Final = f"{kafka.CE_PREFIX}source"
CE_TYPE: Final = f"{kafka.CE_PREFIX}type"
CE_SPECVERSION: Final = f"{kafka.CE_PREFIX}specversion"
CE_TIME: Final = f"{kafka.CE_PREFIX}time"
CE_SUBJECT: Final = f"{kafka.CE_PREFIX}subject"
CONTENT_TYPE_HEADER: Final = common.CONTENT_TYPE_HEADER
REQUIRED_HEADERS: Final = (
    CE_ID,
    CE_SOURCE,
    CE_TYPE,
    CE_SPECVERSION,
    CE_TIME,
    CE_SUBJECT,
    CONTENT_TYPE_HEADER,
)

ID_PATTERN: Final = r"^[!-~]{1,256}$"
"""Printable ASCII without spaces: an id becomes a Kafka header and part of a key.

What a record already on a topic may carry (records kept from before
:data:`PARTY_ID_PATTERN` are read as they are)."""
PARTY_ID_PATTERN: Final = (
    r"^(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"|[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25})$"
)
"""What an agency or provider may use as a CloudEvents id: a UUID or a ULID.

Ids travel in headers, logs, the idempotency store and the audit; free text
there could carry a name (``maria-popescu-0712345678``), so the edges (the
intake API, the inbound relay, the SDKs) accept only ids that cannot."""
PARTY_ID_MESSAGE: Final = "must be a UUID or a ULID (an id that cannot carry a name)"
_PARTY_ID = re.compile(PARTY_ID_PATTERN)


def is_party_id(event_id: str) -> bool:
    """Whether ``event_id`` is a UUID or a ULID (:data:`PARTY_ID_PATTERN`)."""
    return _PARTY_ID.fullmatch(event_id) is not None


_TIME_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
"""RFC 3339 date-time, the zone required."""
_TIME = re.compile(_TIME_PATTERN)

Headers = Iterable[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None]
"""Headers as Kafka clients hand them over: confluent-kafka, aiokafka, Faust."""

_FORMAT = JSONFormat()


def rfc3339(moment: datetime) -> str:
    """RFC 3339 text of an instant in UTC with milliseconds, e.g. ``2025-01-02T03:04:05.678Z``."""
    text = utc_millis(moment).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


def parse_time(text: str) -> datetime:
    """An RFC 3339 date-time; a ``ValueError`` saying "not an RFC 3339 ..." or "not a valid ..."."""
    if not _TIME.fullmatch(text):
        raise ValueError("not an RFC 3339 timestamp")
    try:
        return datetime.fromisoformat(text.upper())
    except ValueError:
        raise ValueError("not a valid date and time") from None


class _MillisecondTime(datetime):
    """An instant that the SDK writes with milliseconds, as :func:`rfc3339` does.

    The SDK writes ``time`` as ``isoformat()`` with ``+00:00`` turned into ``Z``.
    """

    def isoformat(self, sep: str = "T", timespec: str = "milliseconds") -> str:
        return super().isoformat(sep, timespec)

    @classmethod
    def of(cls, moment: datetime) -> _MillisecondTime:
        utc = utc_millis(moment)
        return cls.combine(utc.date(), utc.timetz())


RoutingAttribute = Literal["time", "subject"]
"""An attribute that must say what the data says."""


def disagreements(
    time: datetime | None, subject: str | None, event: Event
) -> list[RoutingAttribute]:
    """The routing attributes that contradict the event's data, ``time`` first.

    ``time`` must be ``occurred_at`` to the millisecond and ``subject`` the
    event's subject (any spelling of the UUID). An absent subject agrees:
    only the structured form may leave it out. ``time=None`` skips the time,
    for a caller that has refused it already.
    """
    wrong: list[RoutingAttribute] = []
    try:
        same_time = time is None or utc_millis(time) == event.occurred_at
    except ValueError:
        same_time = False
    if not same_time:
        wrong.append("time")
    if subject is not None:
        try:
            same_subject = uuid.UUID(subject) == event.subject
        except ValueError:
            same_subject = False
        if not same_subject:
            wrong.append("subject")
    return wrong


def _cloudevent(
    event: Event, event_id: str, source: str, content_type: str, data: Any
) -> CloudEvent:
    """The SDK's v1 event of ``event``; its validation failures are :class:`EncodeError`."""
    attributes = {
        "id": event_id,
        "source": source,
        "type": event.event_type,
        "specversion": SPECVERSION,
        "time": _MillisecondTime.of(event.occurred_at),
        "subject": str(event.subject),
        "datacontenttype": content_type,
    }
    try:
        return CloudEvent(attributes, data)
    except BaseCloudEventException as exc:  # names attributes and rules, never values
        raise EncodeError(f"not a valid CloudEvent: {exc}") from None


@dataclass(frozen=True)
class Envelope:
    """The CloudEvents attributes of a Kafka record."""

    id: str
    source: str
    type: str
    specversion: str
    time: datetime
    subject: str
    content_type: str


def binary_headers(event: Event, *, event_id: str, source: str) -> list[tuple[str, bytes]]:
    """The seven headers of ``event`` in Kafka binary mode, in :data:`REQUIRED_HEADERS` order."""
    message = kafka.to_binary(_cloudevent(event, event_id, source, AVRO_MEDIA_TYPE, None), _FORMAT)
    return list(message.headers.items())


def shown(header_value: str) -> str:
    """A header value fit for an error message: protocol values are short, so cut at 40."""
    return repr(header_value[:40] + ("…" if len(header_value) > 40 else ""))


def read_headers(headers: Headers | None) -> dict[str, str]:
    """The required headers as text; repeated, missing or non-UTF-8 ones are errors.

    Other headers (``traceparent``, a producer's own) are ignored. Raises
    :class:`MissingHeader` naming every missing one, or :class:`InvalidHeader`.
    """
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    found: dict[str, str] = {}
    for name, raw in items:
        if name not in REQUIRED_HEADERS or raw is None:
            continue
        if name in found:
            raise InvalidHeader(f"header {name} appears more than once")
        try:
            found[name] = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidHeader(f"header {name} is not UTF-8") from None
    missing = [name for name in REQUIRED_HEADERS if not found.get(name)]
    if missing:
        raise MissingHeader(f"missing or empty header(s): {', '.join(missing)}")
    if found[CE_SPECVERSION] != SPECVERSION:
        raise InvalidHeader(
            f"ce_specversion is {shown(found[CE_SPECVERSION])}; only {SPECVERSION} is supported"
        )
    media_type = found[CONTENT_TYPE_HEADER].split(";", 1)[0].strip().lower()
    if media_type != AVRO_MEDIA_TYPE:
        raise InvalidHeader(f"content-type is {shown(media_type)}, not {AVRO_MEDIA_TYPE}")
    return found


def envelope(attrs: Mapping[str, str]) -> Envelope:
    """The envelope of headers read by :func:`read_headers`; a bad ``ce_time`` is invalid."""
    try:
        moment = parse_time(attrs[CE_TIME])
    except ValueError as exc:
        raise InvalidHeader(f"ce_time is {exc}") from None
    return Envelope(
        id=attrs[CE_ID],
        source=attrs[CE_SOURCE],
        type=attrs[CE_TYPE],
        specversion=attrs[CE_SPECVERSION],
        time=moment,
        subject=attrs[CE_SUBJECT],
        content_type=attrs[CONTENT_TYPE_HEADER],
    )


def check_agreement(envelope: Envelope, event: Event) -> None:
    """:class:`InvalidHeader` if ``ce_subject`` or ``ce_time`` contradicts the event."""
    wrong = disagreements(envelope.time, envelope.subject, event)
    if "subject" in wrong:
        raise InvalidHeader(f"ce_subject does not match the subject of this {event.event_type}")
    if wrong:
        raise InvalidHeader(f"ce_time is not the occurred_at of this {event.event_type}")


def _sealed_fields(model: type[Event]) -> tuple[str, ...]:
    """Fields holding :class:`Sealed` data, whose ``ciphertext`` is base64 in JSON."""
    return tuple(
        name
        for name, info in model.model_fields.items()
        if info.annotation is Sealed or Sealed in get_args(info.annotation)
    )


_SEALED = {event_type: _sealed_fields(model) for event_type, model in MODELS.items()}


def sealed_fields(event_type: str) -> tuple[str, ...]:
    """The fields of an event type that may hold :class:`Sealed` data (decided by type)."""
    return _SEALED[event_type]


def event_data(event: Event) -> dict[str, Any]:
    """The ``data`` of a structured event: the model's JSON form, sealed ciphertext in base64.

    The intake validates it back into the same model. Pydantic's own JSON
    form would write the ciphertext bytes as UTF-8 text, which they almost
    never are, so each sealed ``ciphertext`` is base64 (RFC 4648, padded).
    """
    sealed = {
        name: value
        for name in _SEALED[event.event_type]
        if isinstance(value := getattr(event, name), Sealed)
    }
    data = event.model_dump(mode="json", exclude=set(sealed))
    for name, value in sealed.items():
        data[name] = {
            **value.model_dump(mode="json", exclude={"ciphertext"}),
            "ciphertext": base64.b64encode(value.ciphertext).decode("ascii"),
        }
    return data


def structured(event: Event, *, event_id: str, source: str) -> bytes:
    """One event as ``application/cloudevents+json`` (the SDK's HTTP binding and JSON format)."""
    cloudevent = _cloudevent(event, event_id, source, _JSON_DATA_TYPE, event_data(event))
    return http.to_structured(cloudevent, _FORMAT).body


def batch(documents: Iterable[bytes]) -> bytes:
    """Structured documents (from :func:`structured`) as ``application/cloudevents-batch+json``."""
    return b"[" + b",".join(documents) + b"]"


def sealed_from_json(event_type: str, data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``data`` with each sealed ``ciphertext`` decoded from base64, and the fields that were not.

    A sealed field that is not an object with a text ``ciphertext`` is left
    for the model to refuse.
    """
    decoded = dict(data)
    invalid: list[str] = []
    for name in _SEALED[event_type]:
        sealed = decoded.get(name)
        if not isinstance(sealed, dict) or not isinstance(sealed.get("ciphertext"), str):
            continue
        try:
            raw = base64.b64decode(sealed["ciphertext"], validate=True)
        except (binascii.Error, ValueError):
            invalid.append(name)
            continue
        decoded[name] = {**sealed, "ciphertext": raw}
    return decoded, invalid


def _party_id(value: str) -> str:
    if not is_party_id(value):
        raise ValueError(PARTY_ID_MESSAGE)
    return value


CeId = Annotated[
    str, AfterValidator(_party_id), Field(json_schema_extra={"pattern": PARTY_ID_PATTERN})
]
CeSource = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,512}$")]
"""A URI-reference naming the sending system (never a person)."""
CeTime = Annotated[
    str, StringConstraints(pattern=_TIME_PATTERN), Field(json_schema_extra={"format": "date-time"})
]
"""RFC 3339 with a zone; must be the event's ``occurred_at``."""
CeSubject = Annotated[str, Field(json_schema_extra={"format": "uuid"})]
DataContentType = Annotated[
    str, StringConstraints(pattern=r"^application/json(\s*;\s*charset=(utf-8|UTF-8))?$")
]


class StructuredEvent(BaseModel):
    """A structured event as the intake accepts it; ``data`` is checked per type afterwards."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"]
    id: CeId
    source: CeSource
    type: str
    time: CeTime
    subject: CeSubject | None = None
    datacontenttype: DataContentType | None = None
    data: dict[str, Any]


_ATTRIBUTES: Final = frozenset(StructuredEvent.model_fields)
"""The members a structured event may have: the core context attributes and ``data``."""


def documented_model(event_type: str, model: type[Event]) -> type[BaseModel]:
    """A structured event of one type, for OpenAPI (validation is :class:`StructuredEvent`)."""
    created: type[BaseModel] = create_model(
        f"{model.__name__}CloudEvent",
        __base__=StructuredEvent,
        __doc__=f"A {event_type} CloudEvent; data is a {model.__name__}.",
        type=(str, Field(json_schema_extra={"const": event_type})),
        data=(model, ...),
    )
    return created


def unknown_attributes(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Members outside the core context attributes and ``data``, each with why it is refused."""
    return [
        (
            name,
            "binary data (data_base64) is not accepted; send data as JSON"
            if name == "data_base64"
            else "extension attributes are not accepted (they would travel unsealed in "
            "Kafka headers)",
        )
        for name in document
        if name not in _ATTRIBUTES
    ]
