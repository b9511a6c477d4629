"""The Faust application, configured the way SafePassage needs it.

Cautions from DESIGN.md, applied once for every worker: at-least-once
processing (Faust's exactly-once mode is unreliable); the replication factor
of the durability profile; no web server, so no table view or page can serve
survivor data; RocksDB tables through rocksdict, whose changelogs rebuild
state elsewhere, with every changelog record acknowledged before the offsets
of its inputs are committed (:mod:`streams.changelog_acks`). Agents use
``concurrency=1`` (:mod:`processors.router.wiring`): more can lose messages
on restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust

from streams.changelog_acks import AckedTable, guard_commits
from streams.clients import faust_config
from streams.settings import KafkaSettings, Profile

__all__ = ["COMMIT_INTERVAL_S", "SESSION_TIMEOUT_S", "create_app", "raw_topic"]

SESSION_TIMEOUT_S = 15.0
"""How long the group waits for a silent worker before giving its partitions to the others."""

COMMIT_INTERVAL_S = 1.0
"""How often processed offsets are committed (Faust's default: 2.8 s). What a restart reads
again, and how long a status reader waits to see a record counted as handled."""


def create_app(
    settings: KafkaSettings,
    app_id: str,
    *,
    data_dir: Path | None = None,
    store: str = "rocksdb://",
    **overrides: Any,
) -> faust.App:
    """A Faust app bound to the settings' cluster (security included) and namespace."""
    replication = 3 if settings.profile is Profile.PRODUCTION else 1
    config: dict[str, Any] = {
        **faust_config(settings),  # cluster and security, as every other client has them
        "processing_guarantee": "at_least_once",
        "topic_replication_factor": replication,
        "topic_partitions": settings.partitions,
        "topic_allow_declare": True,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "store": store,
        "web_enabled": False,
        "web_tables_enabled": False,
        "Table": AckedTable,
        # Faust's default (60 s) keeps the partitions of a worker that died (kill -9, a
        # lost machine) unowned for a minute; heartbeats come every 3 s from the consumer's
        # own thread, so 15 s still allows four misses on a loaded machine.
        "broker_session_timeout": SESSION_TIMEOUT_S,
        "broker_commit_interval": COMMIT_INTERVAL_S,
    }
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        config["datadir"] = str(data_dir)
    config.update(overrides)
    app = faust.App(app_id, **config)

    @app.task  # type: ignore[untyped-decorator]
    async def guard_offset_commits() -> None:  # the producer exists once the app runs
        guard_commits(app)

    del guard_offset_commits  # registered on the app
    return app


def raw_topic(app: faust.App, name: str) -> Any:
    """A topic whose keys and values stay bytes: SafePassage's codec decodes them.

    Decoding in the agent rather than in Faust's serializer keeps every bad
    record in our hands (dead-lettered with its reason); Faust would log a
    value-decode error and move on.
    """
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
