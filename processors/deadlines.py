"""Deadlines as state indexed by due time: a tick costs O(due), not O(open).

Deadlines are data, not timers: they survive restarts and rebalances
because they live in a changelogged table, and each worker scans only the
partitions it owns. This module holds the pure part: the value, its key
encoding, and two implementations of the same operations
(:class:`DeadlineQueue`):

* :class:`StoredDeadlines` over any key-value store with ordered iteration
  (the binding: a Faust table for writes, the partition's RocksDB for the
  ordered scan);
* :class:`MemoryDeadlines` on :mod:`heapq`, for tests and benchmarks.

**Key encoding.** One entry per deadline under::

    <prefix><due-millis, 15 digits>|<kind>|<survivor>|<referral or ->|<level>

e.g. ``p00003|001740819600000|ack|5f1c…|9b2e…|1``. Fifteen zero-padded
digits of Unix milliseconds sort lexicographically in time order up to the
year 33658, so byte order *is* due order and a tick reads the keys from
``<prefix>`` up to :func:`due_bound` (exclusive) and stops: the cost is
one seek plus the entries due. ``<prefix>`` (``p00003|`` from
:func:`partition_prefix`) keeps each partition's deadlines contiguous, so a
worker scans only the partitions it owns. Only ASCII digits, lower-case
UUIDs, ``-`` and fixed kind codes appear, none containing ``|``; no
personal data ever appears in a key. The value is :meth:`Deadline.to_dict`.

**Cancelling.** There is no secondary index: the caller always knows the
exact deadlines to remove, because :mod:`processors.escalation` derives the
stored deadlines from the case (its ``plan``); an answer removes the
answered offer's deadline by key. A tick therefore touches only the due
entries: one read and one delete each.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import islice
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from schemas.types import Attempt, EscalationLevel, UtcDatetime, utc_millis

__all__ = [
    "DUE_DIGITS",
    "NO_REFERRAL",
    "SEPARATOR",
    "Deadline",
    "DeadlineKind",
    "DeadlineQueue",
    "KeyParts",
    "MemoryDeadlines",
    "StoredDeadlines",
    "due_bound",
    "from_millis",
    "parse_key",
    "partition_prefix",
    "to_millis",
]

DUE_DIGITS = 15
"""Width of the zero-padded due time in milliseconds (sorts correctly until year 33658)."""
SEPARATOR = "|"
NO_REFERRAL = "-"
"""Stands for the referral of a case-level clock in keys."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MAX_MILLIS = 10**DUE_DIGITS - 1


class DeadlineKind(StrEnum):
    """What a deadline guards; the value is its code in keys."""

    ACKNOWLEDGE = "ack"
    """A provider must accept or decline an offer (referral status ``offered``)."""
    START = "start"
    """A provider must start a service it accepted (status ``accepted``)."""
    REFLECTION = "reflection"
    """Recovery and reflection period: alert before its end, then its end (case clock)."""
    REASONABLE_GROUNDS = "rg"
    """Target of the reasonable-grounds decision (case clock)."""
    RETENTION = "retention"
    """End of a closed case's retention period: the survivor's data is erased (case clock).

    It escalates nothing; its ``level`` is a fixed placeholder (keys need one)."""

    @property
    def case_clock(self) -> bool:
        """Whether the deadline belongs to the case rather than to one referral."""
        return self in _CASE_CLOCKS


_CASE_CLOCKS = frozenset(
    {DeadlineKind.REFLECTION, DeadlineKind.REASONABLE_GROUNDS, DeadlineKind.RETENTION}
)


def to_millis(instant: datetime) -> int:
    """Unix milliseconds of an aware instant (exact integer arithmetic, no float rounding)."""
    millis = (utc_millis(instant) - _EPOCH) // _MS
    if not 0 <= millis <= _MAX_MILLIS:
        raise ValueError("deadline outside 1970 to year 33658 cannot be encoded")
    return millis


def from_millis(millis: int) -> datetime:
    """Inverse of :func:`to_millis`."""
    return _EPOCH + millis * _MS


def partition_prefix(partition: int) -> str:
    """Key prefix of one partition's deadlines (``p0003|``)."""
    if not 0 <= partition <= 99_999:
        raise ValueError("partition must be in 0..99999")
    return f"p{partition:05d}{SEPARATOR}"


def due_bound(now: datetime, prefix: str = "") -> str:
    """Exclusive upper key bound of everything due at or before ``now``.

    Any key due at ``to_millis(now)`` or earlier sorts below it; any key
    due later starts with it or sorts above it (``|`` sorts after digits).
    """
    return f"{prefix}{to_millis(now) + 1:0{DUE_DIGITS}d}"


class KeyParts(NamedTuple):
    """The identity a deadline key encodes."""

    due_millis: int
    kind: DeadlineKind
    survivor_id: UUID
    referral_id: UUID | None
    level: int


def parse_key(key: str, prefix: str = "") -> KeyParts:
    """Decode a key made by :attr:`Deadline.key` (after ``prefix``); ValueError if malformed."""
    if not key.startswith(prefix):
        raise ValueError(f"key does not start with prefix {prefix!r}")
    parts = key[len(prefix) :].split(SEPARATOR)
    if len(parts) != 5 or len(parts[0]) != DUE_DIGITS or not parts[0].isdigit():
        raise ValueError("not a deadline key")
    due, kind, survivor, referral, level = parts
    return KeyParts(
        due_millis=int(due),
        kind=DeadlineKind(kind),
        survivor_id=UUID(survivor),
        referral_id=None if referral == NO_REFERRAL else UUID(referral),
        level=int(level),
    )


class Deadline(BaseModel):
    """One thing that must have happened by ``due_at``, or escalate to ``level``.

    ``level`` is fixed when the deadline is scheduled (see
    :mod:`processors.escalation`): redelivering the same due deadline can
    therefore never escalate to a *higher* rung than planned, which is what
    makes the ladder idempotent. ``attempt`` ties a referral deadline to the
    offer it was set for, so a deadline of an earlier offer is recognised as
    stale.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    due_at: UtcDatetime
    kind: DeadlineKind
    survivor_id: UUID
    referral_id: UUID | None = None
    level: EscalationLevel
    attempt: Attempt | None = None

    @field_validator("due_at")
    @classmethod
    def _encodable(cls, value: datetime) -> datetime:
        """A due time the key cannot encode must be refused here, not when stored."""
        to_millis(value)
        return value

    @model_validator(mode="after")
    def _owner_fits_kind(self) -> Deadline:
        """A case clock names no referral; a referral deadline names its referral and offer."""
        if self.kind.case_clock:
            if self.referral_id is not None or self.attempt is not None:
                raise ValueError(f"a {self.kind.value} deadline is a case clock: no referral")
        elif self.referral_id is None:
            raise ValueError(f"a {self.kind.value} deadline must name its referral")
        return self

    @property
    def key(self) -> str:
        """The sortable key (without partition prefix); see the module docstring."""
        # due_at is validated UTC with whole milliseconds: no normalising needed here.
        millis = (self.due_at - _EPOCH) // _MS
        referral = str(self.referral_id) if self.referral_id is not None else NO_REFERRAL
        return SEPARATOR.join(
            (
                f"{millis:0{DUE_DIGITS}d}",
                self.kind.value,
                str(self.survivor_id),
                referral,
                str(self.level),
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready value for a table."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Deadline:
        """Inverse of :meth:`to_dict`; validates everything."""
        return cls.model_validate(data)


class DeadlineQueue(Protocol):
    """What the escalation engine needs of a deadline store, whatever backs it."""

    def add(self, deadline: Deadline) -> None:
        """Schedule ``deadline`` (adding the same one twice keeps one)."""

    def discard(self, deadline: Deadline) -> bool:
        """Cancel exactly this deadline; whether it was there."""

    def peek_due(self, now: datetime, limit: int | None = None) -> list[Deadline]:
        """Deadlines due at or before ``now``, earliest first, without removing them."""

    def pop_due(self, now: datetime, limit: int | None = None) -> list[Deadline]:
        """Like :meth:`peek_due`, removing what it returns."""


# --------------------------------------------------------------------------- key-value store


Scan = Callable[[str, str], Iterable[str]]
"""``scan(start, stop)``: keys ``start <= key < stop`` in ascending byte order."""


class StoredDeadlines:
    """Deadlines of one partition in a key-value store with ordered iteration.

    ``entries`` (key → :meth:`Deadline.to_dict`) is the mutable mapping the
    binding writes through, e.g. a Faust table (so every write is
    changelogged to the partition being processed); ``scan`` reads its keys
    in order, e.g. the partition's RocksDB iterator seeked to ``start``.

    For crash safety the binding should :meth:`peek_due`, carry out the
    escalation, and only then :meth:`discard`: a crash in between replays
    the deadline, and the ladder's own state makes the replay a no-op.

    **Low-water mark.** A queue-like workload leaves deletion tombstones at
    the front of the key range until RocksDB compacts them, and a scan from
    the partition's first key would step over all of them, making a tick
    cost O(deleted). So the instance remembers a key below which nothing
    is stored (moved up by each scan, down by any :meth:`add` below it) and
    scans from there. It lives in memory only: create one instance per
    partition when the partition is assigned (after changelog recovery);
    its first scan starts at the prefix.
    """

    def __init__(self, entries: MutableMapping[str, Any], scan: Scan, prefix: str = "") -> None:
        self._entries = entries
        self._scan = scan
        self._prefix = prefix
        self._floor = prefix
        """No stored key of this partition sorts below it."""

    @property
    def prefix(self) -> str:
        """Key prefix of this partition."""
        return self._prefix

    def key_of(self, deadline: Deadline) -> str:
        """The stored key of ``deadline`` (prefix included)."""
        return self._prefix + deadline.key

    def add(self, deadline: Deadline) -> None:
        """Store ``deadline`` (idempotent: the same deadline has the same key)."""
        key = self.key_of(deadline)
        self._entries[key] = deadline.to_dict()
        self._floor = min(self._floor, key)

    def discard(self, deadline: Deadline) -> bool:
        """Remove ``deadline``; whether it was stored."""
        key = self.key_of(deadline)
        if key not in self._entries:
            return False
        del self._entries[key]
        return True

    def peek_due(self, now: datetime, limit: int | None = None) -> list[Deadline]:
        """Due deadlines, earliest first: one ordered scan that stops at the first not due."""
        return [deadline for _, deadline in self._due(now, limit)]

    def pop_due(self, now: datetime, limit: int | None = None) -> list[Deadline]:
        """Due deadlines, earliest first, removed from the store."""
        due = self._due(now, limit)
        for key, _ in due:
            del self._entries[key]
        return [deadline for _, deadline in due]

    def _due(self, now: datetime, limit: int | None) -> list[tuple[str, Deadline]]:
        bound = due_bound(now, self._prefix)
        keys = list(islice(self._scan(self._floor, bound), limit))
        # Nothing is stored below the first due key; with none due, nothing below bound.
        self._floor = keys[0] if keys else max(self._floor, bound)
        due: list[tuple[str, Deadline]] = []
        for key in keys:
            value = self._entries.get(key)
            if value is not None:
                due.append((key, Deadline.from_dict(value)))
        return due


# --------------------------------------------------------------------------- in memory


class MemoryDeadlines:
    """In-memory deadlines on a binary heap of keys, for tests and benchmarks.

    ``add`` costs O(log n) and ``pop_due`` O(k log n) for k due;
    ``discard`` is O(1): it forgets the entry and leaves its key in the
    heap, where a pop later skips it. The heap is rebuilt when such dead
    keys outnumber the live ones, so memory stays within twice the open
    count.
    """

    def __init__(self, deadlines: Iterable[Deadline] = ()) -> None:
        self._live: dict[str, Deadline] = {}
        self._heap: list[str] = []
        for deadline in deadlines:
            key = deadline.key
            if key not in self._live:
                self._heap.append(key)
            self._live[key] = deadline
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        """Number of open deadlines."""
        return len(self._live)

    def __iter__(self) -> Iterator[Deadline]:
        """Open deadlines, earliest first (O(n log n): for tests and snapshots)."""
        return iter([self._live[k] for k in sorted(self._live)])

    def add(self, deadline: Deadline) -> None:
        """Schedule ``deadline`` (idempotent)."""
        key = deadline.key
        if key not in self._live:
            heapq.heappush(self._heap, key)
        self._live[key] = deadline

    def discard(self, deadline: Deadline) -> bool:
        """Cancel ``deadline``; whether it was open."""
        if self._live.pop(deadline.key, None) is None:
            return False
        if len(self._heap) > 1024 and len(self._heap) > 2 * len(self._live):
            self._heap = list(self._live)
            heapq.heapify(self._heap)
        return True

    def peek_due(self, now: datetime, limit: int | None = None) -> list[Deadline]:
        """Due deadlines, earliest first, left in place."""
        due = self.pop_due(now, limit)
        for deadline in due:
            self.add(deadline)
        return due

    def pop_due(self, now: datetime, limit: int | None = None) -> list[Deadline]:
        """Due deadlines, earliest first, removed."""
        bound = due_bound(now)
        heap, live = self._heap, self._live
        due: list[Deadline] = []
        while heap and heap[0] < bound and (limit is None or len(due) < limit):
            deadline = live.pop(heapq.heappop(heap), None)
            if deadline is not None:  # else discarded earlier: its key was left behind
                due.append(deadline)
        return due

    def next_due(self) -> datetime | None:
        """When the earliest open deadline is due (for a timer that sleeps until then)."""
        while self._heap and self._heap[0] not in self._live:
            heapq.heappop(self._heap)
        return from_millis(int(self._heap[0][:DUE_DIGITS])) if self._heap else None

    def to_dicts(self) -> list[dict[str, Any]]:
        """Every open deadline as plain data, earliest first."""
        return [d.to_dict() for d in self]

    @classmethod
    def from_dicts(cls, data: Iterable[Mapping[str, Any]]) -> MemoryDeadlines:
        """Inverse of :meth:`to_dicts`."""
        return cls(Deadline.from_dict(d) for d in data)
