"""The CloudEvents 1.0 structured-mode JSON the SDKs' HTTP transport sends to the intake API.

One job: turn an :class:`~connectors.sdk.transport.Outgoing` event into the
document ``POST /v1/events`` reads (one event as
``application/cloudevents+json``, several as a JSON array in
``application/cloudevents-batch+json``). The Kafka binary-mode headers are
the codec's (:mod:`streams.codec`), whose spec version and RFC 3339 time
this form shares; only the JSON body, with sealed fields in base64, is
written here.
"""

from __future__ import annotations

import base64
from typing import Any

from connectors.sdk.events import check_event_id
from connectors.sdk.transport import Outgoing
from schemas.types import Sealed
from streams.codec import SPECVERSION, rfc3339

__all__ = ["BATCH_CONTENT_TYPE", "STRUCTURED_CONTENT_TYPE", "structured_cloudevent"]

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


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
        "specversion": SPECVERSION,
        "id": item.event_id,
        "source": item.source,
        "type": event.event_type,
        "time": rfc3339(event.occurred_at),
        "subject": str(event.subject),
        "datacontenttype": "application/json",
        "data": data,
    }
