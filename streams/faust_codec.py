"""A Faust codec for SafePassage events, so agents can receive typed models.

``value_serializer="safepassage"`` on a Faust topic turns framed Avro
values into :class:`schemas.models.Event` instances and back. The value
alone carries its schema (fingerprint or registry id), so no header is
needed to decode; CloudEvents headers are still written by
:func:`streams.faust_codec.send_event`.

A record that cannot be decoded this way is handled by Faust's own
value-decode-error path (logged and skipped). Agents that must keep every
bad record use raw topics and :func:`streams.consuming.process_records`,
which dead-letters it instead.
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from schemas.models import Event
from streams.codec import Codec

__all__ = ["CODEC_NAME", "EventCodec", "register", "send_event"]

CODEC_NAME = "safepassage"


class EventCodec(codecs.Codec):
    """Faust codec: Event ⇄ framed Avro bytes."""

    def __init__(self, codec: Codec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._codec = codec

    def _dumps(self, obj: Any) -> bytes:
        if not isinstance(obj, Event):
            raise TypeError(f"the {CODEC_NAME} codec encodes events, not {type(obj).__name__}")
        return self._codec.encode_value(obj)

    def _loads(self, s: bytes) -> Event:
        return self._codec.decode_value(s)


def register(codec: Codec) -> None:
    """Make ``value_serializer="safepassage"`` available to every Faust topic."""
    codecs.register(CODEC_NAME, EventCodec(codec))


async def send_event(topic: Any, codec: Codec, event: Event, *, event_id: str | None = None) -> Any:
    """Send an event from Faust with its key and CloudEvents headers; wait for the ack."""
    record = codec.encode(event, topic.get_topic_name(), event_id=event_id)
    pending = await topic.send(key=record.key, value=record.value, headers=record.headers)
    return await pending
