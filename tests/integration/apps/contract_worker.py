"""A Faust worker for the contract tests (``faust -A tests.integration.apps.contract_worker``).

One agent, configured by the environment like any SafePassage worker
(``SAFEPASSAGE_BOOTSTRAP_SERVERS``, ``SAFEPASSAGE_TOPIC_NAMESPACE``), on the
path every SafePassage agent takes: raw intake records through
:func:`streams.consuming.process_records` (codec decode, dead letters, the
default failure policy). For each valid record ``gate``

* forwards its event id to ``<namespace>.test-processed``;
* re-publishes a housing cancellation, encoded with :meth:`Codec.encode`,
  to the housing referral topic (Faust → plain consumer);
* raises a :class:`~processors.exceptions.ProcessorsError` for a case closed
  by agency ``agency-bug``: a stand-in for a bug of the router, which must
  stop the worker (:func:`~streams.consuming.stop_app_on_error`) after
  keeping the record.

Every malformed record is dead-lettered and the worker goes on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from processors.exceptions import ProcessorsError
from schemas.models import CaseClosed, ReferralCancelled
from schemas.types import ServiceCategory
from streams.app import create_app, raw_topic
from streams.codec import Codec, Decoded
from streams.consuming import FaustDeadLetterSink, process_records, stop_app_on_error
from streams.logs import configure_logging
from streams.settings import KafkaSettings
from streams.topics import referral_topic

BUG_AGENCY = "agency-bug"
"""A case closed by this agency makes ``gate`` raise a ProcessorsError."""

settings = KafkaSettings()
configure_logging(settings.log_format, settings.log_level)
ns = settings.topic_namespace
codec = Codec(
    settings,
    source="/safepassage/test-worker",
    max_record_bytes=int(os.environ.get("TEST_MAX_RECORD_BYTES", "10000")),
)

app = create_app(
    settings,
    f"contract-test-{ns}",
    data_dir=Path(os.environ.get("TEST_DATA_DIR", f".state/faust-{ns}")),
    store="memory://",
)
intake = raw_topic(app, f"{ns}.intake.v1")
deadletters = raw_topic(app, f"{ns}.deadletter.v1")
processed = raw_topic(app, f"{ns}.test-processed")
housing_name = referral_topic(settings, "housing")
housing = raw_topic(app, housing_name)


async def forward(decoded: Decoded) -> None:
    """Report the record processed; relay a housing cancellation; fail like a bug if told to."""
    event = decoded.event
    if isinstance(event, CaseClosed) and event.agency_id == BUG_AGENCY:
        raise ProcessorsError("test bug: the router cannot handle this case")
    if isinstance(event, ReferralCancelled) and event.category is ServiceCategory.HOUSING:
        record = codec.encode(event, housing_name)
        relayed = await housing.send(key=record.key, value=record.value, headers=record.headers)
        await relayed
    pending = await processed.send(
        key=decoded.envelope.id.encode(), value=event.event_type.encode()
    )
    await pending


@app.agent(intake, concurrency=1)
async def gate(stream: Any) -> None:
    await stop_app_on_error(
        app, process_records(stream, codec, forward, FaustDeadLetterSink(deadletters))
    )
