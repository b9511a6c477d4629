"""The operators' status read, answered by the intake from its own copy of ``case-status.v1``.

:class:`StatusStore` replays the compacted topic (keyed by survivor, a
tombstone on erasure) into memory and follows it. Until it has caught up with
the end offsets it saw at start, reads answer 503 with ``Retry-After``: a
half-read topic could say "unknown survivor" for one that exists.
:func:`read_status` is the whole read, audited. The intake is the one HTTP
surface that reads status: one place to authenticate and audit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from pydantic import ValidationError

from connectors.auth import Principal, authorize_status_read, may_read_status_of
from connectors.exceptions import BrokerUnavailableError, ForbiddenError
from connectors.intake.problems import ProblemError, broker_unavailable
from connectors.intake.publisher import Publisher
from processors.status import StatusRead, StatusRecord, StatusView, status_view
from streams.codec import EncodedRecord
from streams.exceptions import StreamsError
from streams.logs import get_logger
from streams.problems import (
    forbidden,
    invalid_path_parameter,
    status_unavailable,
    unknown_survivor,
)
from streams.replay import ReplayReader
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["StatusReader", "StatusStore", "read_status"]

_log = get_logger("connectors.intake")

RETRY_AFTER_S = 2
"""What a 503 asks a client to wait while the store catches up."""


class StatusReader(Protocol):
    """What the status read needs (:class:`StatusStore`, or a test's fixed copy)."""

    @property
    def ready(self) -> bool:
        """Whether the copy has caught up with the topic's end as of its start."""
        ...

    def get(self, survivor: UUID) -> StatusRecord | None: ...

    async def start(self) -> None:
        """Begin reading (called once the event loop runs)."""

    async def close(self) -> None: ...


class StatusStore:
    """Every survivor's latest status record, from the compacted ``case-status.v1``.

    A run builds a fresh copy and serves it once caught up; if the reader
    fails (the broker unreachable at start, the topic not provisioned yet),
    it is started again after a pause, and a copy that was caught up before
    keeps being served meanwhile. Memory: one record per survivor with a case.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        retry_s: Callable[[int], float] = lambda failures: min(2.0**failures, 30.0),
        reader: Callable[..., ReplayReader] = ReplayReader,
    ) -> None:
        self._kafka = kafka
        self.topic = Topics.of(kafka).case_status
        self._retry_s = retry_s
        self._reader = reader
        self._served: dict[UUID, StatusRecord] = {}
        self._ready = False
        self._task: asyncio.Task[None] | None = None
        self.skipped = 0
        """Records that could not be read (logged by coordinates, never by content)."""

    @property
    def ready(self) -> bool:
        return self._ready

    def __len__(self) -> int:
        return len(self._served)

    def get(self, survivor: UUID) -> StatusRecord | None:
        return self._served.get(survivor)

    async def start(self) -> None:
        """Start reading in the background (a lifespan may start it again after a close)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._keep_reading(), name="status-store")

    async def close(self) -> None:
        """Stop reading; what was read stays served until the next start."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _keep_reading(self) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await self._read_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker, the topic, a bug: read again, never crash
                failures = 0 if time.monotonic() - started > 600 else failures + 1
                pause = self._retry_s(failures)
                _log.warning(
                    "intake.status_store_failed",
                    error_class=type(exc).__name__,
                    error=str(exc) if isinstance(exc, StreamsError) else None,
                    retry_in_s=pause,
                )
                await asyncio.sleep(pause)

    async def _read_once(self) -> None:
        """One replay into a fresh copy, served from the moment it has caught up."""
        copy: dict[UUID, StatusRecord] = {}

        def caught_up() -> None:
            self._served, self._ready = copy, True
            _log.info("intake.status_store_ready", survivors=len(copy), skipped=self.skipped)

        reader = self._reader(
            self._kafka,
            (self.topic,),
            name="status-store",
            apply=lambda record: self._apply(copy, record),
            on_caught_up=caught_up,
        )
        await reader.run()

    def _apply(self, copy: dict[UUID, StatusRecord], record: Any) -> None:
        """Last value per key wins; a tombstone removes the survivor; a bad record is skipped.

        A record that cannot be read removes what was known of its key: an
        older status must not be shown as the current one.
        """
        try:
            survivor = UUID(bytes(record.key).decode("ascii"))
        except (TypeError, ValueError):
            self._skip(record, "key")
            return
        if record.value is None:
            copy.pop(survivor, None)
            return
        try:
            status = StatusRecord.model_validate(json.loads(record.value))
        except (ValueError, ValidationError):
            copy.pop(survivor, None)
            self._skip(record, "value")
            return
        if status.survivor_id != survivor:
            copy.pop(survivor, None)
            self._skip(record, "key-mismatch")
            return
        copy[survivor] = status

    def _skip(self, record: Any, what: str) -> None:
        self.skipped += 1
        _log.warning(
            "intake.status_record_skipped",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            unreadable=what,
        )


async def read_status(
    store: StatusReader,
    publisher: Publisher,
    kafka: KafkaSettings,
    principal: Principal,
    survivor_id: str,
    *,
    timeout_s: float,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> StatusView:
    """One read of a survivor's status by an operator or an agency of the case; or the problem.

    Order: the role (403) before the id (400), so a provider learns
    nothing; readiness (503 with ``Retry-After``); then the answer, 200 or
    404, judged at the instant of reading (consents expire). An agency's
    read of a survivor it did not identify is answered exactly like an
    unknown id (404), so it learns nothing either (an agency the case is
    shared with reads it while the sharing holds). Every answer but the 503
    of an unready copy, refusals included, is audited on ``audit.v1`` (who,
    whom, which status, why refused; no case data, never the path's text)
    and acknowledged by Kafka before it is given: a read that cannot be
    audited is not answered (503).
    """

    def read(survivor: UUID | None, status: int, refusal: str | None = None) -> StatusRead:
        return StatusRead(
            survivor_id=survivor,
            at=now(),
            principal=principal.name,
            role=principal.role.value,
            key_id=principal.key_id,
            status=status,
            refusal=refusal,
        )

    audit_topic = Topics.of(kafka).audit
    survivor = _survivor_or_none(survivor_id)
    try:
        authorize_status_read(principal)
    except ForbiddenError as exc:
        await _audit(publisher, audit_topic, read(survivor, 403, "role"), timeout_s)
        raise ProblemError(forbidden(str(exc))) from None
    if survivor is None:
        await _audit(publisher, audit_topic, read(None, 400, "not-a-uuid"), timeout_s)
        raise ProblemError(
            invalid_path_parameter(
                "survivor_id", "must be a UUID", "the survivor id must be a UUID"
            )
        )
    if not store.ready:
        raise ProblemError(status_unavailable(RETRY_AFTER_S))
    record = store.get(survivor)
    refusal = None
    if record is not None and not may_read_status_of(principal, record.agencies_at(now())):
        record, refusal = None, "not-the-callers-survivor"  # answered like an unknown id
    done = read(survivor, 200 if record is not None else 404, refusal)
    await _audit(publisher, audit_topic, done, timeout_s)
    _log.info(
        "intake.status_read",
        principal=principal.name,
        role=principal.role.value,
        survivor_id=str(survivor),
        status=done.status,
        refusal=refusal,
    )
    if record is None:
        raise ProblemError(unknown_survivor())
    return status_view(record, done.at)


def _survivor_or_none(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


async def _audit(publisher: Publisher, topic: str, read: StatusRead, timeout_s: float) -> None:
    """One ``status.read`` on ``audit.v1``, acknowledged before the answer.

    Keyed by survivor, or by the caller when the path held no survivor id.
    """
    survivor = str(read.survivor_id) if read.survivor_id is not None else read.principal
    value = json.dumps(read.to_dict(), separators=(",", ":"), sort_keys=True).encode()
    record = EncodedRecord(topic=topic, key=survivor.encode(), value=value, headers=[])
    try:
        await asyncio.wait_for(publisher.submit(record), timeout_s)
    except (BrokerUnavailableError, TimeoutError):
        _log.warning("intake.status_read_not_audited", survivor_id=survivor, status=read.status)
        raise broker_unavailable(
            "Kafka did not acknowledge the audit record of this read; nothing was answered"
        ) from None
