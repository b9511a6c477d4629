"""The router's binding over in-memory tables and topics: what it writes, where, in which order.

The fakes meet the ports of :mod:`processors.router.ports` the way Faust's
tables and topics do: a topic's ``send`` queues a record and returns the
ack still to await, a table is a mapping. One journal records every send,
ack and table write, so the tests check the crash-safety order of
:mod:`processors.engine` (every ack before any table write, deadlines
added early and removed late), not only the final state.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from prometheus_client import REGISTRY

from processors.case import CaseState
from processors.deadlines import Deadline, partition_prefix
from processors.directory import Directory, apply_directory
from processors.escalation import EscalationState
from processors.exceptions import ProcessorsError
from processors.lifecycle import ReferralStatus
from processors.policy import RoutingPolicy
from processors.router import Binding, DirectoryView
from processors.router.ports import WRITER_HEADER, Headers, Scan
from processors.router.stores import sorted_scan
from processors.settings import ClockMode, EscalationSettings
from processors.sla import default_policy
from processors.status import StatusRecord, status_record
from schemas.models import Event, SurvivorErasureRequested
from schemas.types import AgeGroup, CancelReason, EscalationReason, RiskLevel
from streams.codec import Codec, Decoded
from streams.exceptions import RecordRejected, WrongEventType
from streams.settings import KafkaSettings
from streams.ticks import TICK_KEY, decode_tick, encode_tick
from streams.topics import CATEGORIES, referral_topic
from streams.tracing import TRACEPARENT
from tests.unit.domain_builders import (
    AGENCY,
    HOUSING,
    T0,
    accepted,
    consent,
    identified,
    provider,
    request,
    risk,
    source_for,
    uid,
)

SETTINGS = KafkaSettings()
NS = SETTINGS.topic_namespace
INTAKE = f"{NS}.intake.v1"
RESPONSES = f"{NS}.provider-responses.v1"
ESCALATIONS = f"{NS}.escalations.v1"
HOUSING_TOPIC = referral_topic(SETTINGS, "housing")
SLA = default_policy()
PARTITION = 3
SID, RID = uid("binding-survivor"), uid("binding-referral")
FIRST, SECOND = uid("binding-provider-1"), uid("binding-provider-2")
LATER = T0 + timedelta(days=30)
"""Long after every deadline an offer or escalation of T0 can have."""


def json_time(moment: datetime) -> str:
    """An instant as pydantic writes it into JSON."""
    return moment.isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- fakes


@dataclass(frozen=True)
class Sent:
    """One record a topic was asked to send."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None
    partition: int | None


@dataclass
class Journal:
    """Everything the binding did, in order: ``("send"|"ack", topic)``, ``("set"|"del", table)``."""

    steps: list[tuple[str, str]] = field(default_factory=list)

    def first(self, kind: str) -> int:
        return next(i for i, (k, _) in enumerate(self.steps) if k == kind)

    def last(self, kind: str) -> int:
        return max(i for i, (k, _) in enumerate(self.steps) if k == kind)

    def writes_wait_for_acks(self) -> bool:
        """Whether no table was written while a record sent before it was still unacknowledged."""
        outstanding: dict[str, int] = {}
        for kind, name in self.steps:
            if kind == "send":
                outstanding[name] = outstanding.get(name, 0) + 1
            elif kind == "ack":
                outstanding[name] -= 1
            elif any(outstanding.values()):
                return False
        return True


class AckFailedError(Exception):
    """The broker refused a record (the fake's stand-in for a Kafka error)."""


@dataclass
class FakeTopic:
    """A Faust topic: ``send`` queues and returns the ack; the ack is journaled when awaited."""

    name: str
    journal: Journal
    sent: list[Sent] = field(default_factory=list)
    fail: bool = False

    async def send(
        self,
        *,
        key: bytes | None = None,
        value: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Awaitable[Any]:
        self.sent.append(Sent(self.name, key, value, headers, partition))
        self.journal.steps.append(("send", self.name))
        return self._ack()

    async def _ack(self) -> None:
        if self.fail:
            raise AckFailedError(self.name)
        self.journal.steps.append(("ack", self.name))


class FakeTable(dict[str, Any]):
    """A Faust table: a mapping whose writes are journaled (each would be changelogged)."""

    def __init__(self, name: str, journal: Journal) -> None:
        super().__init__()
        self.name = name
        self.journal = journal

    def __setitem__(self, key: str, value: Any) -> None:
        self.journal.steps.append(("set", self.name))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.journal.steps.append(("del", self.name))
        super().__delitem__(key)


@dataclass(frozen=True)
class Tick:
    """A raw tick record as Faust hands it to the binding."""

    value: bytes
    partition: int


@dataclass
class World:
    """A binding over fakes, with handles on every fake."""

    binding: Binding
    codec: Codec
    view: DirectoryView
    journal: Journal
    topics: dict[str, FakeTopic]
    tables: dict[str, FakeTable]
    scanned: list[int]

    def sent(self, topic: str) -> list[Sent]:
        return self.topics[topic].sent

    def events(self, topic: str) -> list[Event]:
        return [
            self.codec.decode(s.value, s.headers, topic=topic, key=s.key).event
            for s in self.sent(topic)
        ]

    def case(self) -> CaseState:
        return CaseState.from_dict(self.tables["cases"][str(SID)])

    def deadline_keys(self) -> list[str]:
        return sorted(self.tables["deadlines"])

    def decoded(self, event: Event, topic: str = INTAKE) -> Decoded:
        record = self.codec.encode(event, topic, source=source_for(event))
        return self.codec.decode(record.value, record.headers, topic=topic, key=record.key)

    async def feed(self, *events: Event, topic: str = INTAKE) -> None:
        for event in events:
            await self.binding.handle(self.decoded(event, topic))

    def forget_sent(self) -> None:
        for topic in self.topics.values():
            topic.sent.clear()
        self.journal.steps.clear()


def world(*providers: UUID, max_due_per_tick: int = 500) -> World:
    journal = Journal()
    codec = Codec(SETTINGS, source="/safepassage/router")
    view = DirectoryView(SETTINGS, codec)
    directory = Directory()
    for pid in providers:
        directory = apply_directory(directory, provider(pid, capacity=1))
    view.directory = directory
    names = ["audit", "status", "keys", "ledger", "ticks"]
    outputs = [ESCALATIONS, *(referral_topic(SETTINGS, c) for c in CATEGORIES)]
    topics = {name: FakeTopic(name, journal) for name in [*names, *outputs]}
    tables = {name: FakeTable(name, journal) for name in ("cases", "ladder", "deadlines")}
    scanned: list[int] = []

    def scans(partition: int) -> Scan:
        scanned.append(partition)
        return sorted_scan(tables["deadlines"])

    binding = Binding(
        codec=codec,
        view=view,
        policy=RoutingPolicy(sla=SLA),
        sla=SLA,
        clock=EscalationSettings(clock=ClockMode.EXTERNAL, max_due_per_tick=max_due_per_tick),
        cases=tables["cases"],
        ladder=tables["ladder"],
        deadlines=tables["deadlines"],
        audit=topics["audit"],
        status=topics["status"],
        keys=topics["keys"],
        ledger=topics["ledger"],
        ticks=topics["ticks"],
        outputs={name: topics[name] for name in outputs},
        scans=scans,
        current_partition=lambda: PARTITION,
    )
    return World(binding, codec, view, journal, topics, tables, scanned)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def offer(w: World) -> None:
    await w.feed(identified(SID), consent(SID), request(SID, RID))


# --------------------------------------------------------------------------- handle


async def test_a_request_is_offered_published_reserved_and_stored_in_that_order() -> None:
    w = world(FIRST)
    await w.feed(identified(SID), consent(SID))
    w.forget_sent()

    await w.feed(request(SID, RID))

    (offered,) = w.events(HOUSING_TOPIC)
    assert offered.event_type == "referral.offered"
    assert offered.provider_id == FIRST  # type: ignore[attr-defined]
    assert w.sent(HOUSING_TOPIC)[0].key == str(FIRST).encode()  # addressed to the provider
    (reservation,) = w.sent("ledger")
    assert reservation.key == str(FIRST).encode()
    assert json.loads(reservation.value or b"")["action"] == "reserve"
    assert reservation.headers == [(WRITER_HEADER, w.view.writer)]
    entry = w.view.directory.get(FIRST)  # applied locally at once, not waiting for the replay
    assert entry is not None and entry.available(offered.category) == 0  # type: ignore[attr-defined]
    (status,) = w.sent("status")
    assert status.key == str(SID).encode()
    assert json.loads(status.value or b"")["referrals"][0]["status"] == "offered"
    assert w.sent("audit") and all(a.key == str(SID).encode() for a in w.sent("audit"))
    assert w.case().referrals[RID].status is ReferralStatus.OFFERED
    assert w.tables["ladder"][str(SID)]
    assert w.deadline_keys() and all(
        k.startswith(partition_prefix(PARTITION)) for k in w.deadline_keys()
    )
    # Every record acknowledged before the first table write: a crash replays the input.
    assert w.journal.last("ack") < w.journal.first("set")
    assert w.journal.writes_wait_for_acks()
    assert w.journal.steps.count(("send", HOUSING_TOPIC)) == 1
    assert {t for k, t in w.journal.steps if k == "ack"} == {
        t for k, t in w.journal.steps if k == "send"
    }


async def test_an_offer_continues_the_trace_of_the_request_that_caused_it() -> None:
    """W3C Trace Context: the router's outputs carry a child of the input's traceparent."""
    w = world(FIRST)
    await w.feed(identified(SID), consent(SID))
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    incoming = f"00-{trace_id}-00f067aa0ba902b7-01"
    record = w.codec.encode(request(SID, RID), INTAKE, source=source_for(request(SID, RID)))
    record.headers.append((TRACEPARENT, incoming.encode()))
    await w.binding.handle(
        w.codec.decode(record.value, record.headers, topic=INTAKE, key=record.key)
    )

    (offer,) = w.sent(HOUSING_TOPIC)
    (outgoing,) = [v.decode() for k, v in offer.headers or () if k == TRACEPARENT]
    assert outgoing.split("-")[1] == trace_id  # the same trace
    assert outgoing != incoming  # a span of the router's own


async def test_the_status_is_stamped_with_event_time_and_carries_consent_terms() -> None:
    w = world(FIRST)
    await w.feed(identified(SID))
    w.forget_sent()
    granted_at, expires_at = T0 + timedelta(minutes=3), T0 + timedelta(minutes=4)

    await w.feed(consent(SID, categories=[HOUSING], expires_at=expires_at, at=granted_at))

    (status,) = w.sent("status")
    record = json.loads(status.value or b"")
    assert record["last_update"] == json_time(granted_at)  # the event's time, not the clock's
    # Expiry is the reader's to judge at read time: the terms, never a summary.
    assert record["consents"] == [
        {"categories": ["HOUSING"], "cross_border": False, "expires_at": json_time(expires_at)}
    ]
    assert "consent" not in record
    assert StatusRecord.model_validate(record) == status_record(w.case())


async def test_a_replay_publishes_the_same_status_bytes_whenever_it_runs() -> None:
    events = (identified(SID), consent(SID), request(SID, RID))
    first, again = world(FIRST, SECOND), world(FIRST, SECOND)
    await first.feed(*events)
    await again.feed(*events)
    await first.binding.tick(Tick(encode_tick(LATER), PARTITION))
    await again.binding.tick(Tick(encode_tick(LATER), PARTITION))

    published = [s.value for s in first.sent("status")]
    assert published == [s.value for s in again.sent("status")]
    # The escalation's record is stamped with the tick's instant.
    assert json.loads(published[-1] or b"")["last_update"] == json_time(LATER)
    assert json.loads(published[-1] or b"")["escalation_level"] >= 1


async def test_a_failed_ack_leaves_every_table_as_it_was() -> None:
    w = world(FIRST)
    await w.feed(identified(SID), consent(SID))
    before = {name: dict(table) for name, table in w.tables.items()}
    w.forget_sent()
    w.topics["ledger"].fail = True

    with pytest.raises(AckFailedError):
        await w.feed(request(SID, RID))

    assert {name: dict(table) for name, table in w.tables.items()} == before
    assert not [s for s in w.journal.steps if s[0] in {"set", "del"}]
    entry = w.view.directory.get(FIRST)
    assert entry is not None and entry.available(next(iter(entry.places))) == 1  # not reserved


async def test_a_refused_answer_is_audited_then_rejected_with_the_cores_reason() -> None:
    w = world(FIRST)
    await offer(w)
    case_before = w.tables["cases"][str(SID)]
    w.forget_sent()

    with pytest.raises(RecordRejected, match=r"^referral\.unknown: "):
        await w.feed(accepted(SID, uid("nobody-asked"), FIRST, 1), topic=RESPONSES)

    audits = [json.loads(a.value or b"") for a in w.sent("audit")]
    assert audits and audits[-1]["action"] == "rejected"
    assert not w.sent(HOUSING_TOPIC) and not w.sent("ledger")
    assert w.tables["cases"][str(SID)] == case_before


async def test_an_answer_is_stored_and_removes_the_offers_deadline_last() -> None:
    w = world(FIRST)
    await offer(w)
    offer_deadlines = set(w.deadline_keys())
    w.forget_sent()

    await w.feed(accepted(SID, RID, FIRST, 1), topic=RESPONSES)

    assert w.case().referrals[RID].status is ReferralStatus.ACCEPTED
    assert offer_deadlines - set(w.deadline_keys())  # the answer ended the offer's clock
    assert w.journal.steps[-1] == ("del", "deadlines")  # removed after case and ladder
    assert w.journal.last("set") < w.journal.first("del")


async def test_an_erasure_tombstones_the_status_and_the_key_and_cancels_the_offer() -> None:
    w = world(FIRST)
    await w.feed(identified(SID), consent(SID), request(SID, RID))
    w.forget_sent()
    erasure = SurvivorErasureRequested(survivor_id=SID, occurred_at=T0, agency_id=AGENCY)

    await w.feed(erasure)

    [status], [key] = w.sent("status"), w.sent("keys")
    assert (status.key, status.value) == (str(SID).encode(), None)
    assert (key.key, key.value) == (str(SID).encode(), None)
    [cancelled] = w.events(HOUSING_TOPIC)
    assert cancelled.reason is CancelReason.ERASURE  # type: ignore[attr-defined]
    assert w.case().erased_at is not None and w.case().profile is None
    w.forget_sent()
    with pytest.raises(RecordRejected, match=r"survivor\.erased"):  # dead-lettered, not applied
        await w.feed(risk(SID, RiskLevel.HIGH))
    assert w.sent("status") == [] and w.sent("keys") == []


async def test_a_directory_event_is_not_a_survivors_input() -> None:
    w = world()
    with pytest.raises(WrongEventType):
        await w.feed(provider(FIRST), topic=f"{NS}.providers.v1")
    assert not w.journal.steps


async def test_a_child_is_escalated_at_once_on_the_escalation_topic() -> None:
    w = world(FIRST)
    escalated = sample("safepassage_escalations_total", level="3")
    routed = sample("safepassage_routing_seconds_count")
    await w.feed(identified(SID, age=AgeGroup.UNKNOWN), consent(SID), request(SID, RID))
    # Metrics count what was published and acked: a child goes to the operator
    # (level 3); three inputs timed.
    assert sample("safepassage_escalations_total", level="3") == escalated + 1
    assert sample("safepassage_routing_seconds_count") == routed + 3

    (escalation,) = w.events(ESCALATIONS)
    assert escalation.reason is EscalationReason.CHILD_PROTECTION  # type: ignore[attr-defined]
    assert w.sent(ESCALATIONS)[0].key == str(SID).encode()
    assert not w.sent(HOUSING_TOPIC)


# --------------------------------------------------------------------------- publish


async def test_an_event_without_its_output_topic_is_a_bug_not_a_record_problem() -> None:
    w = world(FIRST)
    del w.binding.outputs[HOUSING_TOPIC]  # type: ignore[attr-defined]
    await w.feed(identified(SID), consent(SID))

    with pytest.raises(ProcessorsError, match=r"no single output topic for referral\.offered"):
        await w.feed(request(SID, RID))
    assert RID not in w.case().referrals  # nothing of the request was stored


async def test_an_input_replayed_after_a_crash_republishes_the_same_event_ids() -> None:
    w = world(FIRST)
    await w.feed(identified(SID), consent(SID))
    stored = {name: dict(table) for name, table in w.tables.items()}
    directory = w.view.directory
    decoded = w.decoded(request(SID, RID))
    await w.binding.handle(decoded)
    for name, table in w.tables.items():  # the worker died before its changelog was written
        dict.clear(table)
        dict.update(table, stored[name])
    w.view.directory = directory
    w.binding.forget_queues()

    await w.binding.handle(decoded)

    offers = w.sent(HOUSING_TOPIC)
    ids = [dict(s.headers or ())["ce_id"] for s in offers]
    assert len(ids) == 2 and ids[0] == ids[1]  # consumers drop the copy by its CloudEvents id
    assert offers[0].value == offers[1].value


# --------------------------------------------------------------------------- tick, escalate


async def test_a_tick_before_any_deadline_is_due_does_nothing() -> None:
    w = world(FIRST)
    await offer(w)
    w.forget_sent()

    await w.binding.tick(Tick(encode_tick(T0), PARTITION))

    assert not w.journal.steps


async def test_a_missed_offer_escalates_and_goes_to_the_next_provider() -> None:
    w = world(FIRST, SECOND)
    await offer(w)
    (first_offer,) = w.events(HOUSING_TOPIC)
    holder = first_offer.provider_id  # type: ignore[attr-defined]
    other = SECOND if holder == FIRST else FIRST
    w.forget_sent()

    await w.binding.tick(Tick(encode_tick(LATER), PARTITION))

    missed = [e for e in w.events(ESCALATIONS) if e.reason is EscalationReason.DEADLINE_MISSED]  # type: ignore[attr-defined]
    assert missed and missed[0].referral_id == RID  # type: ignore[attr-defined]
    assert missed[0].provider_id == holder  # type: ignore[attr-defined]
    re_offers = [e for e in w.events(HOUSING_TOPIC) if e.event_type == "referral.offered"]
    assert re_offers and re_offers[-1].provider_id == other  # type: ignore[attr-defined]
    actions = [json.loads(s.value or b"")["action"] for s in w.sent("ledger")]
    assert "release" in actions and "reserve" in actions
    ladder = EscalationState.from_dict(w.tables["ladder"][str(SID)])
    assert ladder.referrals  # the rung reached is remembered
    assert w.case().referrals[RID].attempt == 2
    assert w.journal.writes_wait_for_acks()
    assert not w.sent("ticks")  # fewer due than the limit: no follow-up


async def test_a_burst_beyond_the_limit_sends_a_follow_up_tick_to_the_same_partition() -> None:
    w = world(FIRST, SECOND, max_due_per_tick=1)
    await offer(w)
    await w.feed(identified(uid("second-survivor")), consent(uid("second-survivor")))
    await w.feed(request(uid("second-survivor"), uid("second-referral")))
    due_before = len(w.deadline_keys())
    w.forget_sent()

    await w.binding.tick(Tick(encode_tick(LATER), PARTITION))

    (follow_up,) = w.sent("ticks")
    assert follow_up.key == TICK_KEY and follow_up.partition == PARTITION
    assert decode_tick(follow_up.value) == LATER  # the same instant, at the back of the queue
    escalated = {e.survivor_id for e in w.events(ESCALATIONS)}  # type: ignore[attr-defined]
    assert len(escalated) == 1  # one deadline handled, the other waits for the follow-up
    assert due_before


async def test_an_escalated_deadline_is_gone_and_a_second_tick_finds_nothing_new() -> None:
    w = world(FIRST)
    await offer(w)
    await w.binding.tick(Tick(encode_tick(LATER), PARTITION))
    escalations = len(w.sent(ESCALATIONS))
    assert escalations

    await w.binding.tick(Tick(encode_tick(LATER), PARTITION))

    assert len(w.sent(ESCALATIONS)) == escalations  # no deadline escalated twice


# --------------------------------------------------------------------------- queues


async def test_one_queue_per_partition_and_forgotten_on_rebalance() -> None:
    w = world(FIRST)
    first = w.binding.queue(PARTITION)
    assert w.binding.queue(PARTITION) is first
    assert first.prefix == partition_prefix(PARTITION)
    other = w.binding.queue(PARTITION + 1)
    assert other.prefix == partition_prefix(PARTITION + 1)
    assert w.scanned == [PARTITION, PARTITION + 1]

    w.binding.forget_queues()

    assert w.binding.queue(PARTITION) is not first
    assert w.scanned == [PARTITION, PARTITION + 1, PARTITION]


async def test_deadlines_of_other_partitions_are_not_escalated() -> None:
    w = world(FIRST)
    await offer(w)
    w.forget_sent()

    await w.binding.tick(Tick(encode_tick(LATER), PARTITION + 1))

    assert not w.sent(ESCALATIONS) and not w.journal.steps
    assert all(
        Deadline.from_dict(w.tables["deadlines"][k]).survivor_id == SID for k in w.deadline_keys()
    )
