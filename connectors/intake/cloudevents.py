"""CloudEvents in, typed events out: the envelope checks behind ``POST /v1/events``.

A request's documents become :class:`Item` s, each a validated
:mod:`schemas.models` event already encoded for its topic, or the request is
refused as a whole: every event is checked before anything is published, so
a batch is all or nothing. The checks run from the cheapest, and the role's
right to an event type is checked before its data, so that a caller learns
nothing about the models of events it may not send. Only the core context
attributes are accepted: extension attributes would travel unsealed in Kafka
headers.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
)

from connectors.auth import Principal, authorize_event, authorize_event_type
from connectors.exceptions import ForbiddenError
from connectors.idempotency import fingerprint
from connectors.intake.problems import (
    FieldError,
    ProblemError,
    invalid_events,
    json_pointer,
    pydantic_errors,
)
from schemas.models import MODELS, Event
from schemas.types import Sealed, utc_millis
from streams.codec import Codec, EncodedRecord
from streams.contract import AGENCY_EVENTS, PROVIDER_ANSWERS
from streams.exceptions import EncodeError

__all__ = [
    "BATCH_MEDIA_TYPE",
    "PUBLISHABLE",
    "STRUCTURED_MEDIA_TYPE",
    "Envelope",
    "Item",
    "envelope_schema_model",
    "validate_events",
]

STRUCTURED_MEDIA_TYPE = "application/cloudevents+json"
BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"

PUBLISHABLE = AGENCY_EVENTS | PROVIDER_ANSWERS

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


class Envelope(BaseModel):
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


def envelope_schema_model(event_type: str, model: type[Event]) -> type[BaseModel]:
    """A documented CloudEvent of one type (OpenAPI only; validation is :class:`Envelope`)."""
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
            pointer + json_pointer([name]),
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


@dataclass(frozen=True)
class Item:
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


def _check_event(
    principal: Principal,
    document: Any,
    index: int,
    pointer: str,
    *,
    codec: Codec,
    topic_of: Mapping[str, str],
) -> Item:
    """One CloudEvent checked, or :class:`_Rejected` with every problem found at the step.

    Steps run from the cheapest; the role's right to the event type is
    checked before the data, so a caller learns nothing about the models
    of events it may not send.
    """
    if not isinstance(document, dict):
        raise _Rejected([FieldError(pointer, "a CloudEvent must be a JSON object")])
    _check_attribute_names(document, pointer)
    try:
        envelope = Envelope.model_validate(document)
    except ValidationError as exc:
        raise _Rejected(pydantic_errors(exc, pointer)) from None
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
        raise _Rejected(pydantic_errors(exc, f"{pointer}/data")) from None
    errors = _agreement(envelope, event, pointer)
    if errors:
        raise _Rejected(errors)
    with _forbidden_as_rejection(pointer):
        authorize_event(principal, event, f"{pointer}/data")
    try:
        record = codec.encode(
            event, topic_of[envelope.type], event_id=envelope.id, source=envelope.source
        )
    except EncodeError as exc:
        raise _Rejected([FieldError(f"{pointer}/data", str(exc))]) from None
    digest = fingerprint(principal.name, document)
    return Item(index, pointer, envelope.id, envelope.source, event, record, digest)


def _agreement(envelope: Envelope, event: Event, pointer: str) -> list[FieldError]:
    """``time`` and ``subject`` are routing metadata: they must say what the data says."""
    errors = []
    try:
        moment = utc_millis(datetime.fromisoformat(envelope.time.upper()))
    except ValueError:
        errors.append(FieldError(f"{pointer}/time", "not a valid RFC 3339 date and time"))
    else:
        if moment != event.occurred_at:
            errors.append(
                FieldError(f"{pointer}/time", "must equal data.occurred_at (to the millisecond)")
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


def validate_events(
    principal: Principal,
    documents: Sequence[Any],
    batch: bool,
    *,
    codec: Codec,
    topic_of: Mapping[str, str],
) -> list[Item]:
    """Every event checked before anything is published: all or nothing.

    403 if any event is not the caller's to send, else 400 if any is
    invalid; both list every offending event by its JSON Pointer.
    """
    items: list[Item] = []
    invalid: list[FieldError] = []
    forbidden: list[FieldError] = []
    for index, document in enumerate(documents):
        try:
            items.append(
                _check_event(
                    principal,
                    document,
                    index,
                    f"/{index}" if batch else "",
                    codec=codec,
                    topic_of=topic_of,
                )
            )
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
    first: dict[tuple[str, str], Item] = {}
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
        raise invalid_events(invalid)
    return items
