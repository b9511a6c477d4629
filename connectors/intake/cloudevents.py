"""CloudEvents in, typed events out: the checks behind ``POST /v1/events``.

A request's documents become :class:`Item` s, each a validated event already
encoded for its topic, or the request is refused as a whole: a batch is all
or nothing. The structured format's rules come from :mod:`streams.cloudevents`;
this module adds the caller's rights and locates every problem by JSON Pointer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from connectors.auth import (
    Principal,
    authorize_event,
    authorize_event_type,
    authorize_source,
)
from connectors.exceptions import ForbiddenError
from connectors.idempotency import fingerprint
from connectors.intake.problems import ProblemError, json_pointer, pydantic_errors
from schemas.models import MODELS, Event
from schemas.types import utc_millis
from streams.cloudevents import (
    StructuredEvent,
    disagreements,
    parse_time,
    sealed_from_json,
    unknown_attributes,
)
from streams.codec import Codec, EncodedRecord
from streams.contract import AGENCY_EVENTS, PROVIDER_ANSWERS
from streams.exceptions import EncodeError
from streams.problems import FieldError, Problem, forbidden

__all__ = ["PUBLISHABLE", "Item", "validate_events"]

PUBLISHABLE = AGENCY_EVENTS | PROVIDER_ANSWERS

SealedCheck = Callable[[Event, str], list[FieldError]]
"""Where an event's sealed values do not open (:meth:`KeyDirectory.unopenable`), by pointer."""


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
    sealed_check: SealedCheck | None = None,
    digest: str | None = None,
) -> Item:
    """One CloudEvent checked, or :class:`_Rejected` with every problem found at the step.

    Steps run from the cheapest; the role's right to the event type is
    checked before the data, so a caller learns nothing about the models
    of events it may not send.
    """
    if not isinstance(document, dict):
        raise _Rejected([FieldError(pointer, "a CloudEvent must be a JSON object")])
    unknown = unknown_attributes(document)
    if unknown:
        raise _Rejected([FieldError(pointer + json_pointer([n]), why) for n, why in unknown])
    try:
        envelope = StructuredEvent.model_validate(document)
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
        authorize_source(principal, envelope.source, f"{pointer}/source")
    data, invalid = sealed_from_json(envelope.type, envelope.data)
    if invalid:
        raise _Rejected(
            [
                FieldError(f"{pointer}/data/{name}/ciphertext", "must be base64 (RFC 4648, padded)")
                for name in invalid
            ]
        )
    try:
        event = model.model_validate(data)
    except ValidationError as exc:
        raise _Rejected(pydantic_errors(exc, f"{pointer}/data")) from None
    errors = _agreement(envelope, event, pointer)
    if errors:
        raise _Rejected(errors)
    with _forbidden_as_rejection(pointer):
        authorize_event(principal, event, f"{pointer}/data")
    unopenable = sealed_check(event, pointer) if sealed_check is not None else []
    if unopenable:
        raise _Rejected(unopenable)
    try:
        record = codec.encode(
            event, topic_of[envelope.type], event_id=envelope.id, source=envelope.source
        )
    except EncodeError as exc:
        raise _Rejected([FieldError(f"{pointer}/data", str(exc))]) from None
    if digest is None:
        digest = fingerprint(principal.name, document)
    return Item(index, pointer, envelope.id, envelope.source, event, record, digest)


def _agreement(envelope: StructuredEvent, event: Event, pointer: str) -> list[FieldError]:
    """``time`` and ``subject`` are routing metadata: they must say what the data says."""
    errors = []
    try:
        moment = utc_millis(parse_time(envelope.time))
    except ValueError:
        moment = None
        errors.append(FieldError(f"{pointer}/time", "not a valid RFC 3339 date and time"))
    messages = {
        "time": "must equal data.occurred_at (to the millisecond)",
        "subject": "must be the event's subject (the survivor id) or absent",
    }
    return errors + [
        FieldError(f"{pointer}/{name}", messages[name])
        for name in disagreements(moment, envelope.subject, event)
    ]


def validate_events(
    principal: Principal,
    documents: Sequence[Any],
    batch: bool,
    *,
    codec: Codec,
    topic_of: Mapping[str, str],
    sealed_check: SealedCheck | None = None,
    digests: Sequence[str | None] = (),
) -> list[Item]:
    """Every event checked before anything is published: all or nothing.

    403 if any event is not the caller's to send, else 400 if any is
    invalid; both list every offending event by its JSON Pointer.
    ``digests`` gives the idempotency fingerprint of an event where it must
    not be taken from the document as it is now (the intake sealed its
    clear personal data: a retry would seal again, differently).
    """
    items: list[Item] = []
    invalid: list[FieldError] = []
    refused: list[FieldError] = []
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
                    sealed_check=sealed_check,
                    digest=digests[index] if index < len(digests) else None,
                )
            )
        except _Rejected as rejection:
            (refused if rejection.forbidden else invalid).extend(rejection.errors)
    if refused:
        detail = (
            refused[0].message
            if len(refused) == 1
            else f"{len(refused)} events are not allowed; see errors"
        )
        raise ProblemError(forbidden(detail, tuple(refused)))
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
        count = len(invalid)
        detail = f"{count} problem{'s' if count != 1 else ''} with the request body; see errors"
        raise ProblemError(
            Problem(400, "invalid-event", "Invalid CloudEvent", detail, tuple(invalid))
        )
    return items
