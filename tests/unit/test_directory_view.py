"""The directory view's replay rules, fed records by hand (no broker, no Faust worker)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from processors.directory import CapacityAction, CapacityChange
from processors.router import DirectoryView
from processors.router.ports import WRITER_HEADER
from schemas.models import ProviderCapacity
from schemas.types import ServiceCategory
from streams.codec import Codec
from streams.settings import KafkaSettings
from tests.unit.domain_builders import T0, provider

SETTINGS = KafkaSettings()
HOUSING = ServiceCategory.HOUSING


@dataclass
class Record:
    topic: str
    key: bytes | None
    value: bytes
    headers: Any = ()
    partition: int = 0
    offset: int = 0


def view() -> DirectoryView:
    return DirectoryView(SETTINGS, Codec(SETTINGS, source="/safepassage/test"))


def ledger(
    v: DirectoryView, action: CapacityAction, pid: Any, rid: Any, **headers: bytes
) -> Record:
    change = CapacityChange(action=action, provider_id=pid, category=HOUSING, referral_id=rid)
    return Record(
        v.ledger_topic, str(pid).encode(), change.model_dump_json().encode(), tuple(headers.items())
    )


def registration(v: DirectoryView, pid: Any, capacity: int = 2) -> Record:
    encoded = Codec(SETTINGS, source="/safepassage/test").encode(
        provider(pid, capacity=capacity), v.providers_topic
    )
    return Record(v.providers_topic, encoded.key, encoded.value, encoded.headers)


def test_a_reservation_seen_before_its_provider_is_kept_until_the_provider_arrives() -> None:
    v, pid, rid = view(), uuid4(), uuid4()
    v._apply(ledger(v, CapacityAction.RESERVE, pid, rid))
    assert v.pending
    v._apply(registration(v, pid, capacity=2))
    entry = v.directory.get(pid)
    assert entry is not None and entry.available(HOUSING) == 1
    assert not v.pending


def test_reserve_then_release_before_the_provider_leaves_the_place_free() -> None:
    v, pid, rid = view(), uuid4(), uuid4()
    v._apply(ledger(v, CapacityAction.RESERVE, pid, rid))
    v._apply(ledger(v, CapacityAction.RELEASE, pid, rid))
    v._apply(registration(v, pid, capacity=2))
    entry = v.directory.get(pid)
    assert entry is not None and entry.available(HOUSING) == 2


def test_a_worker_skips_its_own_ledger_records() -> None:
    v, pid, rid = view(), uuid4(), uuid4()
    v._apply(registration(v, pid, capacity=2))
    v._apply(ledger(v, CapacityAction.RESERVE, pid, rid, **{WRITER_HEADER: v.writer}))
    entry = v.directory.get(pid)
    assert entry is not None and entry.available(HOUSING) == 2
    v._apply(ledger(v, CapacityAction.RESERVE, pid, rid))  # another worker's
    entry = v.directory.get(pid)
    assert entry is not None and entry.available(HOUSING) == 1


def test_bad_records_are_skipped_not_fatal() -> None:
    v = view()
    v._apply(Record(v.providers_topic, b"k", b"garbage"))
    v._apply(Record(v.ledger_topic, b"k", b"{not json"))
    assert v.directory.providers == {}


def test_directory_events_count_only_from_the_senders_that_may_write_them() -> None:
    v, pid = view(), uuid4()
    for source in ("/agencies/agency:nl-police", f"/providers/{pid}", "/test"):
        encoded = Codec(SETTINGS, source=source).encode(provider(pid), v.providers_topic)
        v._apply(Record(v.providers_topic, encoded.key, encoded.value, encoded.headers))
    assert v.directory.get(pid) is None
    encoded = Codec(SETTINGS, source="/directory-admins/dir-admin").encode(
        provider(pid, capacity=2), v.providers_topic
    )
    v._apply(Record(v.providers_topic, encoded.key, encoded.value, encoded.headers))
    entry = v.directory.get(pid)
    assert entry is not None and entry.available(HOUSING) == 2

    def report(source: str, available: int) -> None:
        figure = ProviderCapacity(
            provider_id=pid, occurred_at=T0, category=HOUSING, total=2, available=available
        )
        encoded = Codec(SETTINGS, source=source).encode(figure, v.providers_topic)
        v._apply(Record(v.providers_topic, encoded.key, encoded.value, encoded.headers))

    report(f"/providers/{uuid4()}", 0)  # another provider: ignored
    entry = v.directory.get(pid)
    assert entry is not None and entry.available(HOUSING) == 2
    report(f"/providers/{pid}", 1)  # its own
    entry = v.directory.get(pid)
    assert entry is not None and entry.available(HOUSING) == 1
