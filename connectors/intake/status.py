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
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypedDict
from uuid import UUID

from pydantic import ValidationError

from connectors.auth import Principal, authorize_status_read, may_read_status_of
from connectors.exceptions import BrokerUnavailableError, ForbiddenError
from connectors.intake.problems import ProblemError, broker_unavailable
from connectors.intake.publisher import Publisher
from processors.status import StatusRead, StatusRecord, StatusView, status_view
from streams.codec import EncodedRecord
from streams.followed import FollowedCopy, backoff_s
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

__all__ = [
    "Caller",
    "StatusReader",
    "StatusStore",
    "audit_read",
    "caller",
    "read_status",
    "uuid_or_none",
]

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


class StatusStore(FollowedCopy[dict[UUID, StatusRecord]]):
    """Every survivor's latest status record, from the compacted ``case-status.v1``.

    Served once caught up, rebuilt after a failure (:class:`FollowedCopy`).
    Memory: one record per survivor with a case.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        retry_s: Callable[[int], float] = backoff_s,
        reader: Callable[..., ReplayReader] = ReplayReader,
    ) -> None:
        super().__init__(
            kafka,
            Topics.of(kafka).case_status,
            name="status-store",
            empty=dict,
            apply=self._apply,
            retry_s=retry_s,
            reader=reader,
        )

    def __len__(self) -> int:
        return len(self.served)

    def get(self, survivor: UUID) -> StatusRecord | None:
        return self.served.get(survivor)

    def _apply(self, copy: dict[UUID, StatusRecord], record: Any) -> None:
        """Last value per key wins; a tombstone removes the survivor; a bad record is skipped."""
        read = status_of(record, self.skip)
        if read is None:
            return
        survivor, status = read
        if status is None:
            copy.pop(survivor, None)
        else:
            copy[survivor] = status


def status_of(
    record: Any, skip: Callable[[Any, str], None]
) -> tuple[UUID, StatusRecord | None] | None:
    """A ``case-status.v1`` record read: (survivor, status), or (survivor, None) to forget it.

    None when the key names no survivor (``skip`` told why). A record that
    cannot be read, or sits under another survivor's key, removes what was
    known of its key: an older status must not be shown as the current one.
    Shared by every copy of the topic (the intake's store, the console's counts).
    """
    try:
        survivor = UUID(bytes(record.key).decode("ascii"))
    except (TypeError, ValueError):
        skip(record, "key")
        return None
    if record.value is None:
        return survivor, None
    try:
        status = StatusRecord.model_validate(json.loads(record.value))
    except (ValueError, ValidationError):
        skip(record, "value")
        return survivor, None
    if status.survivor_id != survivor:
        skip(record, "key-mismatch")
        return survivor, None
    return survivor, status


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
            survivor_id=survivor, at=now(), status=status, refusal=refusal, **caller(principal)
        )

    audit_topic = Topics.of(kafka).audit
    survivor = uuid_or_none(survivor_id)
    try:
        authorize_status_read(principal)
    except ForbiddenError as exc:
        await audit_read(publisher, audit_topic, read(survivor, 403, "role"), timeout_s)
        raise ProblemError(forbidden(str(exc))) from None
    if survivor is None:
        await audit_read(publisher, audit_topic, read(None, 400, "not-a-uuid"), timeout_s)
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
    await audit_read(publisher, audit_topic, done, timeout_s)
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


def uuid_or_none(text: str) -> UUID | None:
    """The UUID a path names, or None: the audit keeps no text that is not an id."""
    try:
        return UUID(text)
    except ValueError:
        return None


class Caller(TypedDict):
    """How an audit record names the caller: keys-file principal, role, key id (never the key)."""

    principal: str
    role: str
    key_id: str


def caller(principal: Principal) -> Caller:
    """The :class:`Caller` fields of every audit record the intake writes about an answer."""
    return Caller(principal=principal.name, role=principal.role.value, key_id=principal.key_id)


async def audit_read(publisher: Publisher, topic: str, read: StatusRead, timeout_s: float) -> None:
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
