"""What both SDKs check before an event leaves the process, and how a retry stays the same event.

A contract violation surfaces as :class:`~connectors.exceptions.SdkValidationError`
naming fields and error types, never values (they may be personal data and
end up in callers' logs); a CloudEvents id must suit both transports; and the
first ``occurred_at`` of each id is remembered, so that an event published
again under it is byte-identical.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from connectors.exceptions import SdkValidationError
from schemas.models import Event
from streams.cloudevents import PARTY_ID_MESSAGE, is_party_id
from streams.memory import BoundedMemory

__all__ = ["RememberedTimes", "build_event", "check_event_id", "invalid_event", "utc_now"]

E = TypeVar("E", bound=Event)


def utc_now() -> datetime:
    """The current time in UTC (the SDK clients' default clock)."""
    return datetime.now(UTC)


def check_event_id(event_id: str) -> str:
    """The id, if the platform accepts it: a UUID or a ULID (no room for a name).

    It travels as a Kafka header and in the intake API's logs, idempotency
    store and audit. The SDK's own ids are uuid4 (or uuid5 for answers).
    """
    if not is_party_id(event_id):
        raise SdkValidationError(
            f"event_id {PARTY_ID_MESSAGE}",
            ({"loc": "event_id", "type": "string_pattern_mismatch", "msg": "invalid id"},),
        )
    return event_id


def invalid_event(model: type[Event] | str, exc: ValidationError) -> SdkValidationError:
    """The SDK error for a pydantic failure: field paths and error types, never the values."""
    name = model if isinstance(model, str) else model.event_type
    errors = tuple(
        {
            "loc": ".".join(str(part) for part in error["loc"]) or "(event)",
            "type": error["type"],
            "msg": error["msg"],
        }
        for error in exc.errors(include_input=False, include_url=False, include_context=False)
    )
    summary = "; ".join(f"{e['loc']}: {e['type']}" for e in errors)
    return SdkValidationError(f"invalid {name}: {summary}", errors)


def build_event(model: type[E], **fields: Any) -> E:
    """``model(**fields)``, with a validation failure as :class:`SdkValidationError`.

    Also for callers that assemble events themselves (for ``publish_many``).
    """
    try:
        return model(**fields)
    except ValidationError as exc:
        raise invalid_event(model, exc) from None


class RememberedTimes:
    """``occurred_at`` of recently published ids, so that a retry in this process is the same event.

    The intake API fingerprints the whole event: the same id with another
    ``occurred_at`` (a caller retrying without passing the time again) is a
    409 conflict, not a replay. Bounded, least recently used first out.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._times: BoundedMemory[str, datetime] = BoundedMemory(capacity)
        self._lock = threading.Lock()

    def resolve(
        self, event_id: str, given: datetime | None, clock: Callable[[], datetime]
    ) -> datetime:
        """``given`` if set, else the time remembered for ``event_id``, else now; remembered."""
        with self._lock:
            moment = given if given is not None else self._times.get(event_id) or clock()
            self._times.remember(event_id, moment)
            return moment
