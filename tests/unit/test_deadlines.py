"""Deadlines indexed by due time: key encoding, both stores, and pop_due's contract (hypothesis)."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from processors.deadlines import (
    Deadline,
    DeadlineKind,
    DeadlineQueue,
    KeyParts,
    MemoryDeadlines,
    StoredDeadlines,
    due_bound,
    from_millis,
    parse_key,
    partition_prefix,
    to_millis,
)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
S1 = UUID(int=1)
R1 = UUID(int=2)


def deadline(
    due: datetime = T0,
    *,
    kind: DeadlineKind = DeadlineKind.ACKNOWLEDGE,
    survivor: UUID = S1,
    referral: UUID | None = R1,
    level: int = 1,
    attempt: int | None = 1,
) -> Deadline:
    return Deadline(
        due_at=due,
        kind=kind,
        survivor_id=survivor,
        referral_id=referral,
        level=level,
        attempt=attempt,
    )


class SortedStore(MutableMapping[str, Any]):
    """A key-value store with ordered iteration, as the binding's RocksDB partition offers."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.keys_sorted: list[str] = []
        self.scanned = 0
        """Keys handed out by ``scan``: what a tick costs."""

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self.data:
            bisect.insort(self.keys_sorted, key)
        self.data[key] = value

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self.keys_sorted.pop(bisect.bisect_left(self.keys_sorted, key))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.keys_sorted))

    def __len__(self) -> int:
        return len(self.data)

    def scan(self, start: str, stop: str) -> Iterator[str]:
        i = bisect.bisect_left(self.keys_sorted, start)
        for key in self.keys_sorted[i:]:
            if key >= stop:
                return
            self.scanned += 1
            yield key


def stored(prefix: str = "") -> StoredDeadlines:
    store = SortedStore()
    return StoredDeadlines(store, store.scan, prefix=prefix)


STORES: dict[str, Callable[[], DeadlineQueue]] = {
    "memory": MemoryDeadlines,
    "stored": stored,
    "stored-partition": lambda: stored(partition_prefix(7)),
}


@pytest.fixture(params=sorted(STORES))
def queue(request: pytest.FixtureRequest) -> DeadlineQueue:
    return STORES[request.param]()


# --------------------------------------------------------------------------- keys


def test_key_layout() -> None:
    d = deadline(referral=UUID(int=2), level=3)
    assert d.key == (f"{to_millis(T0):015d}|ack|{S1}|00000000-0000-0000-0000-000000000002|3")
    clock = deadline(referral=None, kind=DeadlineKind.REFLECTION, attempt=None)
    assert clock.key.split("|")[3] == "-"


def test_the_owner_must_fit_the_kind() -> None:
    with pytest.raises(ValidationError, match="must name its referral"):
        deadline(referral=None)
    with pytest.raises(ValidationError, match="case clock"):
        deadline(kind=DeadlineKind.REASONABLE_GROUNDS)
    with pytest.raises(ValidationError, match="case clock"):
        deadline(kind=DeadlineKind.REFLECTION, referral=None, attempt=1)


def test_keys_parse_back() -> None:
    d = deadline(level=2)
    assert parse_key(d.key) == KeyParts(to_millis(T0), DeadlineKind.ACKNOWLEDGE, S1, R1, 2)
    clock = deadline(referral=None, kind=DeadlineKind.REASONABLE_GROUNDS, attempt=None)
    assert parse_key("p00001|" + clock.key, "p00001|").referral_id is None
    with pytest.raises(ValueError, match="prefix"):
        parse_key(clock.key, "p00001|")
    with pytest.raises(ValueError, match="not a deadline key"):
        parse_key("123|ack")


def test_due_bound_splits_due_from_not_due() -> None:
    bound = due_bound(T0)
    assert deadline(T0).key < bound
    assert deadline(T0 - timedelta(days=400)).key < bound
    assert deadline(T0 + timedelta(milliseconds=1)).key >= bound
    assert deadline(T0, level=3, survivor=UUID(int=2**128 - 1)).key < bound


def test_partition_prefixes_keep_partitions_apart() -> None:
    assert partition_prefix(3) == "p00003|"
    assert partition_prefix(3) + deadline(T0 + timedelta(days=999)).key < partition_prefix(4)
    with pytest.raises(ValueError, match="partition"):
        partition_prefix(-1)


def test_millis_round_trip_and_range() -> None:
    assert from_millis(to_millis(T0)) == T0
    with pytest.raises(ValueError, match="encoded"):
        to_millis(datetime(1969, 12, 31, tzinfo=UTC))
    with pytest.raises(ValidationError, match="encoded"):
        deadline(datetime(1960, 1, 1, tzinfo=UTC))


def test_values_round_trip_through_plain_dicts() -> None:
    d = deadline(T0 + timedelta(microseconds=1500))  # truncated to whole milliseconds
    assert d.due_at == T0 + timedelta(milliseconds=1)
    assert Deadline.from_dict(d.to_dict()) == d
    assert d.to_dict()["kind"] == "ack"


@given(st.lists(st.integers(min_value=0, max_value=10**13), min_size=2, max_size=30))
def test_key_order_is_due_order(millis: list[int]) -> None:
    deadlines = [deadline(from_millis(m), survivor=UUID(int=i)) for i, m in enumerate(millis)]
    by_key = [d.due_at for d in sorted(deadlines, key=lambda d: d.key)]
    assert by_key == sorted(by_key)


# --------------------------------------------------------------------------- both stores


def test_pop_due_returns_what_is_due_in_order(queue: DeadlineQueue) -> None:
    later, first, second = (deadline(T0 + timedelta(hours=h), level=1) for h in (5, 1, 2))
    for d in (later, first, second):
        queue.add(d)
    assert queue.pop_due(T0) == []
    assert queue.pop_due(T0 + timedelta(hours=2)) == [first, second]
    assert queue.pop_due(T0 + timedelta(hours=2)) == []
    assert queue.pop_due(T0 + timedelta(days=1)) == [later]


def test_peek_leaves_in_place_and_limit_limits(queue: DeadlineQueue) -> None:
    ds = [deadline(T0 + timedelta(minutes=m)) for m in range(5)]
    for d in reversed(ds):
        queue.add(d)
    now = T0 + timedelta(hours=1)
    assert queue.peek_due(now, limit=2) == ds[:2]
    assert queue.peek_due(now) == ds
    assert queue.pop_due(now, limit=3) == ds[:3]
    assert queue.pop_due(now) == ds[3:]


def test_add_is_idempotent_and_discard_cancels(queue: DeadlineQueue) -> None:
    d = deadline()
    queue.add(d)
    queue.add(d)
    other = deadline(level=2)
    queue.add(other)
    assert queue.discard(d) is True
    assert queue.discard(d) is False
    assert queue.pop_due(T0) == [other]


def test_a_cancelled_deadline_can_be_scheduled_again(queue: DeadlineQueue) -> None:
    d = deadline()
    queue.add(d)
    queue.discard(d)
    queue.add(d)
    assert queue.pop_due(T0) == [d]
    assert queue.pop_due(T0 + timedelta(days=1)) == []


def test_an_add_below_the_last_scan_is_still_found(queue: DeadlineQueue) -> None:
    queue.add(deadline(T0 + timedelta(hours=1)))
    assert queue.pop_due(T0 + timedelta(hours=2))  # the scan moved past T0 + 2 h
    overdue = deadline(T0, level=2)
    queue.add(overdue)  # e.g. rebuilt after a restore, already overdue
    assert queue.pop_due(T0 + timedelta(hours=2)) == [overdue]


def test_a_stored_tick_reads_only_what_is_due() -> None:
    store = SortedStore()
    queue = StoredDeadlines(store, store.scan)
    for minute in range(1000):
        queue.add(deadline(T0 + timedelta(minutes=minute), survivor=UUID(int=minute)))
    assert len(queue.pop_due(T0 + timedelta(minutes=9))) == 10
    assert store.scanned == 10
    assert queue.pop_due(T0 + timedelta(minutes=9, seconds=30)) == []
    assert store.scanned == 10  # nothing due: nothing read
    assert len(queue.pop_due(T0 + timedelta(minutes=14))) == 5
    assert store.scanned == 15


def test_partitions_do_not_see_each_other() -> None:
    store = SortedStore()
    p1 = StoredDeadlines(store, store.scan, prefix=partition_prefix(1))
    p2 = StoredDeadlines(store, store.scan, prefix=partition_prefix(2))
    a, b = deadline(survivor=UUID(int=10)), deadline(survivor=UUID(int=20))
    p1.add(a)
    p2.add(b)
    assert (p1.prefix, p2.prefix) == (partition_prefix(1), partition_prefix(2))
    assert sorted(store) == [p1.prefix + a.key, p2.prefix + b.key]  # each under its own prefix
    assert p1.key_of(a).startswith("p00001|")
    assert p1.pop_due(T0) == [a]
    assert p2.peek_due(T0) == [b]


def test_memory_snapshot_and_next_due() -> None:
    queue = MemoryDeadlines()
    assert queue.next_due() is None
    ds = [deadline(T0 + timedelta(hours=h), survivor=UUID(int=h)) for h in (3, 1, 2)]
    for d in ds:
        queue.add(d)
    queue.discard(ds[1])
    assert queue.next_due() == T0 + timedelta(hours=2)
    restored = MemoryDeadlines.from_dicts(queue.to_dicts())
    assert list(restored) == [ds[2], ds[0]]
    assert len(restored) == 2


def test_memory_heap_is_compacted_after_many_cancellations() -> None:
    queue = MemoryDeadlines()
    ds = [deadline(T0 + timedelta(seconds=i), survivor=UUID(int=i)) for i in range(3000)]
    for d in ds:
        queue.add(d)
    for d in ds[:2900]:
        queue.discard(d)
    assert len(queue._heap) <= 2 * 1024
    assert queue.pop_due(T0 + timedelta(hours=1)) == ds[2900:]


# --------------------------------------------------------------------------- pop_due's contract


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 40), st.integers(0, 5), st.integers(1, 3)),
        st.tuples(st.just("discard"), st.integers(0, 40), st.integers(0, 5), st.integers(1, 3)),
        st.tuples(st.just("tick"), st.integers(-2, 12), st.booleans(), st.integers(0, 4)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(STORES)), ops=OPS)
def test_pop_due_returns_each_due_deadline_exactly_once_and_nothing_early(
    name: str, ops: list[tuple[str, int, Any, int]]
) -> None:
    """Against a model: every deadline due at or before now comes out once, in order, none later."""
    queue = STORES[name]()
    model: dict[str, Deadline] = {}
    """What is open: popping removes it, so a second pop of it would not be expected."""
    now = T0
    for op, a, b, c in ops:
        if op == "tick":
            now += timedelta(minutes=a)  # a clock may also step back a little (another worker)
            limit = c or None
            got = queue.pop_due(now, limit) if b else queue.peek_due(now, limit)
            due = sorted((k for k, d in model.items() if d.due_at <= now), key=str)
            expected = due[:limit] if limit else due
            assert [d.key for d in got] == expected
            assert all(d.due_at <= now for d in got)
            if b:
                for d in got:
                    del model[d.key]
        else:
            d = deadline(T0 + timedelta(minutes=a), survivor=UUID(int=b), level=c)
            if op == "add":
                queue.add(d)
                model[d.key] = d
            else:
                assert queue.discard(d) is (d.key in model)
                model.pop(d.key, None)
    everything = queue.pop_due(T0 + timedelta(days=365))
    assert [d.key for d in everything] == sorted(model)
