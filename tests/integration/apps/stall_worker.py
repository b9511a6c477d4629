"""A Faust worker whose agent hangs on demand, watched by the stall watchdog.

``python -m tests.integration.apps.stall_worker``: one agent on
``<namespace>.stall-input`` (3 partitions) that commits every record but
hangs forever on a record whose value is ``hang`` (an agent stuck on an
await that never completes, as faust-streaming can leave one after a
rebalance). The watchdog (timeout ``TEST_STALL_TIMEOUT_S``) must stop it
with :data:`streams.stall.EXIT_STALLED`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import faust

from streams.app import create_app, raw_topic
from streams.logs import configure_logging, dict_config
from streams.settings import KafkaSettings
from streams.stall import watch_partitions

settings = KafkaSettings()
configure_logging(settings.log_format, settings.log_level)
INPUT = f"{settings.topic_namespace}.stall-input"
app_id = f"stall-test-{settings.topic_namespace}"
app = create_app(settings, app_id, store="memory://", data_dir=None)
source = raw_topic(app, INPUT)


@app.agent(source, concurrency=1)
async def gate(stream: Any) -> None:
    async for value in stream:
        if value == b"hang":
            await asyncio.Event().wait()


watch_partitions(
    app,
    settings,
    group_id=app_id,
    topics=[INPUT],
    timeout_s=float(os.environ["TEST_STALL_TIMEOUT_S"]),
)

if __name__ == "__main__":
    faust.Worker(
        app, loglevel="info", logging_config=dict_config(settings.log_format, settings.log_level)
    ).execute_from_commandline()
