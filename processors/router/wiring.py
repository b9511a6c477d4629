"""The router's Faust app: topics, tables, agents and timers, wired to the binding.

Faust cautions of DESIGN.md are applied in :func:`streams.app.create_app`
and here: ``concurrency=1``, at-least-once, Faust's web server off (the
router serves no HTTP: status is read through the intake, from
``case-status.v1``). One agent reads the co-partitioned intake,
provider-response and escalation-tick topics, keyed by survivor pseudonym;
ticks come from each worker's wall clock for the partitions it owns, or from
outside (``SAFEPASSAGE_ESCALATION_CLOCK=external``). What the agents do is in
:mod:`.binding` and :mod:`.directory_view`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust

from processors.exceptions import ProcessorsError
from processors.policy import DEFAULT_POLICY, RoutingPolicy
from processors.router.binding import Binding
from processors.router.directory_view import DirectoryView
from processors.router.ports import Scan
from processors.router.stores import rocksdb_scan, sorted_scan
from processors.settings import ClockMode, EscalationSettings
from processors.sla import SlaPolicy, default_policy
from streams.app import create_app, raw_topic
from streams.codec import Codec
from streams.consuming import FaustDeadLetterSink, process_records, stop_app_on_error
from streams.faust_offsets import hole_guard, strict_offsets
from streams.settings import KafkaSettings
from streams.stall import StallWatchdog, watch_partitions
from streams.ticks import TICK_KEY, encode_tick
from streams.topics import Topics

__all__ = ["SOURCE", "Router", "build_router"]

SOURCE = "/safepassage/router"
"""CloudEvents source of everything the router publishes."""


@dataclass
class Router:
    """The Faust app of the router and the parts tests and the CLI need to reach."""

    app: faust.App
    view: DirectoryView
    # The Faust tables; the fields of the same names of Binding say what they hold.
    cases: Any
    ladder: Any
    deadlines: Any
    binding: Binding
    watchdog: StallWatchdog
    """Stops the worker when an owned input partition stalls (see :mod:`streams.stall`)."""

    @property
    def tables(self) -> dict[str, Any]:
        """The Faust tables by name, for :func:`~.changelogs.declare_changelogs`."""
        return {"cases": self.cases, "ladder": self.ladder, "deadlines": self.deadlines}


def _current_partition() -> int:
    """The partition of the record being processed (table writes go to its changelog too)."""
    event = faust.current_event()
    if event is None:  # pragma: no cover - only called from the agent
        raise ProcessorsError("no record is being processed")
    partition: int = event.message.partition
    return partition


def build_router(
    settings: KafkaSettings,
    *,
    policy: RoutingPolicy = DEFAULT_POLICY,
    data_dir: Path | None = None,
    store: str = "rocksdb://",
    app_id: str | None = None,
    clock: EscalationSettings | None = None,
    sla: SlaPolicy | None = None,
    stall_timeout_s: float = 60.0,
) -> Router:
    """Create the router's Faust app: agents, tables, directory view and ticks.

    ``sla`` defaults to the policy's, else the shipped SLA policy; ``clock``
    to :class:`EscalationSettings` from the environment. ``stall_timeout_s``:
    how long an owned input partition may have records waiting without
    progress before the worker stops with :data:`streams.stall.EXIT_STALLED`.
    """
    clock = clock if clock is not None else EscalationSettings()
    sla = sla or policy.sla or default_policy()
    topics = Topics.of(settings)
    app_id = app_id or f"{settings.topic_namespace}-router"
    app = create_app(
        settings,
        app_id,
        # Faust's table files do not name the app: keep each app's apart, or a
        # store left by another namespace would be taken for this one's.
        data_dir=None if data_dir is None else data_dir / app_id,
        store=store,
    )
    # Intake and provider answers are kept forever: an offset is committed only over
    # records processed (ticks keep Faust's rule: the next tick replaces a lost one).
    strict_offsets((topics.intake, topics.provider_responses))
    codec = Codec(settings, source=SOURCE)
    view = DirectoryView(settings, codec)
    inputs = app.topic(
        topics.intake,
        topics.provider_responses,
        topics.escalation_ticks,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    deadletters = raw_topic(app, topics.deadletter)
    audit = raw_topic(app, topics.audit)
    ticks = raw_topic(app, topics.escalation_ticks)

    def table(name: str) -> Any:
        return app.Table(
            name,
            partitions=settings.partitions,
            schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
            options={"driver": "rocksdict"},
        )

    cases, ladder, deadlines = table("cases"), table("ladder"), table("deadlines")
    ordered = store.startswith("rocksdb:")

    def scans(partition: int) -> Scan:
        return rocksdb_scan(deadlines, partition) if ordered else sorted_scan(deadlines)

    binding = Binding(
        codec=codec,
        view=view,
        policy=policy,
        sla=sla,
        clock=clock,
        cases=cases,
        ladder=ladder,
        deadlines=deadlines,
        audit=audit,
        status=raw_topic(app, topics.case_status),
        keys=raw_topic(app, topics.survivor_keys),
        ledger=raw_topic(app, topics.capacity_ledger),
        ticks=ticks,
        outputs={
            name: raw_topic(app, name) for name in (topics.escalations, *topics.all_referrals)
        },
        scans=scans,
        current_partition=_current_partition,
    )

    async def forget_queues(_sender: Any, *_args: Any, **_kwargs: Any) -> None:  # Faust signal
        binding.forget_queues()

    app.on_partitions_revoked.connect(forget_queues)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(forget_queues)  # type: ignore[arg-type]

    @app.task  # type: ignore[untyped-decorator]
    async def follow_directory() -> None:
        await view.run()

    @app.agent(inputs, concurrency=1)
    async def route(stream: Any) -> None:
        await view.ready.wait()
        # An error here is a bug of ours (transient failures are retried in
        # place): stop the worker rather than let Faust restart the agent past it.
        await stop_app_on_error(
            app,
            process_records(
                stream,
                codec,
                binding.handle,
                FaustDeadLetterSink(deadletters),
                raw={topics.escalation_ticks: binding.tick},
                before=hole_guard(app),  # never past a record the fetcher skipped
            ),
        )

    async def tick_owned_partitions() -> None:
        """Wall clock: tick each intake partition this worker owns (ticks are co-partitioned)."""
        now = datetime.now(UTC)
        owned = [
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topics.intake
        ]
        for partition in owned:
            await ticks.send(key=TICK_KEY, value=encode_tick(now), partition=partition)

    if clock.clock is ClockMode.WALL:
        app.timer(clock.tick_interval_s)(tick_owned_partitions)

    watchdog = watch_partitions(
        app,
        settings,
        group_id=app_id,  # Faust's consumer group is the app id
        topics=(topics.intake, topics.provider_responses, topics.escalation_ticks),
        timeout_s=stall_timeout_s,
        ready=view.ready.is_set,
    )
    del follow_directory, route  # registered on the app
    return Router(
        app=app,
        view=view,
        cases=cases,
        ladder=ladder,
        deadlines=deadlines,
        binding=binding,
        watchdog=watchdog,
    )
