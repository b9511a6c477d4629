"""A Faust worker for the contract tests (``faust -A tests.integration.apps.contract_worker``).

Two agents on one app, configured by the environment like any SafePassage
worker (``SAFEPASSAGE_BOOTSTRAP_SERVERS``, ``SAFEPASSAGE_TOPIC_NAMESPACE``):

* ``gate`` reads intake records raw, decodes them with the codec, forwards
  each valid one's event id to ``<namespace>.test-processed`` and
  dead-letters every bad one (:func:`streams.consuming.process_records`);
* ``relay`` reads ``<namespace>.test-typed`` with the Faust codec, so it
  receives typed events, and re-publishes each to the housing referral topic
  with :func:`streams.faust_codec.send_event` (Faust → plain consumer).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from schemas.models import Event
from streams.app import create_app, raw_topic
from streams.codec import Codec, Decoded
from streams.consuming import FaustDeadLetterSink, process_records
from streams.faust_codec import CODEC_NAME, register, send_event
from streams.logs import configure_logging
from streams.settings import KafkaSettings
from streams.topics import referral_topic

settings = KafkaSettings()
configure_logging(settings.log_format, settings.log_level)
ns = settings.topic_namespace
codec = Codec(
    settings,
    source="/safepassage/test-worker",
    max_record_bytes=int(os.environ.get("TEST_MAX_RECORD_BYTES", "10000")),
)
register(codec)

app = create_app(
    settings,
    f"contract-test-{ns}",
    data_dir=Path(os.environ.get("TEST_DATA_DIR", f".state/faust-{ns}")),
    store="memory://",
)
intake = raw_topic(app, f"{ns}.intake.v1")
deadletters = raw_topic(app, f"{ns}.deadletter.v1")
processed = raw_topic(app, f"{ns}.test-processed")
typed = app.topic(
    f"{ns}.test-typed", key_type=bytes, key_serializer="raw", value_serializer=CODEC_NAME
)
housing = raw_topic(app, referral_topic(settings, "housing"))


@app.agent(intake, concurrency=1)
async def gate(stream: Any) -> None:
    async def forward(decoded: Decoded) -> None:
        pending = await processed.send(
            key=decoded.envelope.id.encode(), value=decoded.event.event_type.encode()
        )
        await pending

    await process_records(stream, codec, forward, FaustDeadLetterSink(deadletters))


@app.agent(typed, concurrency=1)
async def relay(stream: Any) -> None:
    async for event in stream:
        if not isinstance(event, Event):
            raise TypeError(f"expected a typed event, got {type(event).__name__}")
        await send_event(housing, codec, event)
