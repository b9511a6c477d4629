"""Faust bindings of the router: records into :mod:`processors.engine`, effects out.

Thin edge over the pure core, nothing decided here; one module per job:

* :mod:`.wiring`: the Faust app. One agent (concurrency 1) over the
  co-partitioned intake, provider-response and ``escalation-ticks.v1``
  topics (keyed by survivor pseudonym); bad records are dead-lettered by
  :func:`streams.consuming.process_records`. Ticks come from each worker's
  wall clock for the partitions it owns, or from outside
  (``SAFEPASSAGE_ESCALATION_CLOCK=external``).
* :mod:`.binding`: each input through :func:`~processors.engine.on_event`
  or :func:`~processors.engine.on_due`, and the step carried out in order:
  publish events (offers and cancellations to the provider's category
  topic, escalations to the escalation topic) and audit records, append
  capacity changes to the ledger, publish the status record (to the
  compacted ``case-status.v1``, stamped with event time; the intake serves
  status reads from it), await every ack,
  and only then write the survivor's tables. A crash in between replays the
  record; the core recognises it by its CloudEvents source and id and the
  re-published events carry the same ids. A refused input is audited and
  dead-lettered with the core's reason.
* :mod:`.ports`: the tables and topics the binding needs, as protocols
  (the unit tests use in-memory fakes).
* :mod:`.directory_view`: every worker's copy of the provider directory and
  the capacity ledger, replayed from the start and followed.
* :mod:`.stores`: ordered scans of the deadlines table's RocksDB.
* :mod:`.changelogs`: the tables' changelog topics, created before Faust.
"""

from __future__ import annotations

from processors.router.binding import Binding
from processors.router.changelogs import changelog_specs, declare_changelogs
from processors.router.directory_view import DirectoryView
from processors.router.wiring import SOURCE, Router, build_router

__all__ = [
    "SOURCE",
    "Binding",
    "DirectoryView",
    "Router",
    "build_router",
    "changelog_specs",
    "declare_changelogs",
]
