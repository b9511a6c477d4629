"""Invariants of the domain core over random event sequences (hypothesis).

A random world (providers, survivors, a cross-border policy) receives a
random but plausible stream of events: identifications, consents and
withdrawals, requests, provider answers (mostly for the current offer,
sometimes stale or from the wrong provider), timeouts, the webhook
connector's reports of offers and cancellations it could not deliver,
cancellations, closures, capacity reports, profile updates and redeliveries. After every
step the properties DESIGN.md and issue 4 promise are checked against an
*independent* oracle built from the raw event log, not from the core's own
consent or routing code:

* never an offer without an active consent for its category (and
  cross-border permission for a provider abroad);
* never a non-child-specialised provider for a minor or a person of unknown age;
* never beyond capacity; never the same provider twice for one referral;
* capacity conserved: the ledger equals the places held by open referrals,
  and reserved + held + available == total;
* no (referral, rung) escalation is published twice: the router's own
  (unroutable) escalations never repeat a rung the escalation engine or the
  router already published for that referral, through re-offers, alerts
  and re-routing;
* every stored referral says since when it is in its status;
* a redelivered event changes nothing and emits nothing;
* replaying the log (with the state serialised between events, as a Faust
  table does) reproduces every state and the directory exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import event as observe
from hypothesis import strategies as st

from processors.case import CaseState
from processors.core import EventMeta, decide
from processors.directory import Directory, apply_directory
from processors.effects import AuditAction, Decision
from processors.geo import country_of
from processors.lifecycle import HOLDING, TRANSIENT, ReferralStatus
from processors.policy import RoutingPolicy, both_ways
from schemas.models import (
    ConsentGranted,
    ConsentWithdrawn,
    Event,
    ProviderEvent,
    ProviderRegistered,
    ReferralCancelled,
    ReferralEscalated,
    ReferralOffered,
    SurvivorEvent,
    SurvivorIdentified,
)
from schemas.types import (
    AgeGroup,
    EscalationReason,
    Gender,
    RiskLevel,
    ServiceCategory,
    UndeliveredEvent,
    Urgency,
)

from . import domain_builders as b

Draw = Callable[..., Any]
"""``data.draw`` of ``st.data()`` (hypothesis' ``DrawFn`` types only ``@composite``'s)."""

JURISDICTIONS = ("NL", "NL-NH", "BE", "DE")
LANGUAGES = ("en", "ro", "nl")
CATEGORIES = (ServiceCategory.HOUSING, ServiceCategory.HEALTH, ServiceCategory.LEGAL_AID)
GENDERS = (Gender.FEMALE, Gender.MALE, Gender.UNKNOWN)
POLICY = RoutingPolicy(cross_border_pairs=both_ways([("NL", "BE")]))
KINDS = (
    *("identify", "grant", "grant", "withdraw", "risk", "timeout", "escalate", "cancel"),
    *("undelivered", "undelivered"),
    *(["request"] * 4),
    *(["answer"] * 8),
)
"""Survivor event kinds, weighted by repetition; ``case.closed`` is drawn separately (rarely)."""
OFFER = UndeliveredEvent.REFERRAL_OFFERED


def _some(options: tuple[str, ...] | tuple[ServiceCategory, ...]) -> st.SearchStrategy[list]:  # type: ignore[type-arg]
    return st.lists(st.sampled_from(options), min_size=1, max_size=len(options), unique=True)


def _mostly(value: bool) -> st.SearchStrategy[bool]:
    """``value`` three times out of four: enough fits for offers, enough misfits to exclude."""
    return st.sampled_from((value, value, value, not value))


@st.composite
def registrations(draw: st.DrawFn, pid: UUID) -> Event:
    """A provider; one in three is a generalist that fits most referrals in NL."""
    if draw(st.integers(0, 2)) == 0:
        return b.provider(
            pid,
            categories=CATEGORIES,
            languages=("en",),
            interpretation=True,
            jurisdictions=draw(st.sampled_from((["NL"], ["NL", "BE"], ["BE"]))),
            child=True,
            accessible=True,
            cross_border=draw(_mostly(True)),
            capacity=draw(st.integers(1, 3)),
        )
    return b.provider(
        pid,
        categories=draw(_some(CATEGORIES)),
        languages=draw(_some(LANGUAGES)),
        interpretation=draw(_mostly(True)),
        jurisdictions=draw(
            st.sampled_from((["NL"], ["NL"], ["NL-NH"], ["BE"], ["NL", "BE"], ["DE"]))
        ),
        child=draw(_mostly(True)),
        gender=draw(st.sampled_from((None, None, None, Gender.FEMALE, Gender.MALE))),
        accessible=draw(_mostly(True)),
        cross_border=draw(st.booleans()),
        capacity=draw(st.integers(0, 3)),
    )


@dataclass
class Oracle:
    """What the raw log says, kept apart from the core's own bookkeeping."""

    identified: dict[UUID, SurvivorIdentified] = field(default_factory=dict)
    grants: dict[UUID, list[ConsentGranted]] = field(default_factory=dict)
    withdrawals: dict[UUID, list[ConsentWithdrawn]] = field(default_factory=dict)
    offered: dict[UUID, list[UUID]] = field(default_factory=dict)

    def see(self, event: Event) -> None:
        if isinstance(event, SurvivorIdentified):
            self.identified[event.survivor_id] = event
        elif isinstance(event, ConsentGranted):
            self.grants.setdefault(event.survivor_id, []).append(event)
        elif isinstance(event, ConsentWithdrawn):
            self.withdrawals.setdefault(event.survivor_id, []).append(event)

    def consents_to(self, offer: ReferralOffered, *, abroad: bool, now: datetime) -> bool:
        """A necessary condition: some grant names the category, is live, not withdrawn for it."""
        pulled = self.withdrawals.get(offer.survivor_id, [])
        for grant in self.grants.get(offer.survivor_id, []):
            mine = [w for w in pulled if w.consent_id == grant.consent_id]
            whole = any(not w.categories and not w.jurisdictions for w in mine)
            category_everywhere = any(
                offer.category in w.categories and not w.jurisdictions for w in mine
            )
            crossing_pulled = any(w.cross_border_withdrawn for w in mine)
            if (
                offer.category in grant.categories
                and (grant.expires_at is None or now < grant.expires_at)
                and not whole
                and not category_everywhere
                and (not abroad or (grant.cross_border_allowed and not crossing_pulled))
            ):
                return True
        return False


@dataclass
class World:
    providers: list[UUID]
    survivors: list[UUID]
    harness: b.Harness = field(default_factory=lambda: b.Harness(policy=POLICY))
    oracle: Oracle = field(default_factory=Oracle)
    clock: datetime = b.T0
    referrals: dict[UUID, list[UUID]] = field(default_factory=dict)
    consents: dict[UUID, list[UUID]] = field(default_factory=dict)
    applied: list[tuple[SurvivorEvent, EventMeta]] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=itertools.count)
    rungs: dict[UUID, set[int]] = field(default_factory=dict)
    """Escalation rungs published per referral so far, by the engine stand-in or the router."""

    def new_id(self, kind: str) -> UUID:
        return b.uid(f"{kind}-{next(self.ids)}")


# --------------------------------------------------------------------------- actions

Answer = Callable[..., SurvivorEvent]
_ANSWERS: dict[ReferralStatus, tuple[Answer, ...]] = {
    ReferralStatus.OFFERED: (b.accepted, b.accepted, b.declined),
    ReferralStatus.ACCEPTED: (b.started, b.started, b.failed),
    ReferralStatus.IN_PROGRESS: (b.completed, b.failed),
}
"""Answers a well-behaved provider would give in each status (a fifth are drawn at random)."""


def _identify(draw: Draw, sid: UUID, at: datetime) -> SurvivorEvent:
    return b.identified(
        sid,
        jurisdiction=draw(st.sampled_from(("NL", "NL", "NL", "NL-NH", "BE"))),
        age=draw(
            st.sampled_from((AgeGroup.ADULT, AgeGroup.ADULT, AgeGroup.MINOR, AgeGroup.UNKNOWN))
        ),
        languages=draw(_some(LANGUAGES)),
        gender=draw(st.sampled_from(GENDERS)),
        at=at,
    )


def _grant(draw: Draw, w: World, sid: UUID, at: datetime) -> SurvivorEvent:
    cid = w.new_id("consent")
    w.consents.setdefault(sid, []).append(cid)
    return b.consent(
        sid,
        consent_id=cid,
        categories=draw(_some(CATEGORIES)),
        cross_border=draw(st.booleans()),
        jurisdictions=draw(
            st.sampled_from(((), (), (), ("NL",), ("NL", "BE"), ("NL", "BE"), ("NL-NH", "DE")))
        ),
        expires_at=draw(
            st.none() | st.none() | st.integers(1, 12).map(lambda h: at + timedelta(hours=h))
        ),
        at=at,
    )


def _survivor_event(draw: Draw, w: World, sid: UUID) -> SurvivorEvent:  # noqa: PLR0911
    at = w.clock
    kind = draw(st.sampled_from(KINDS))
    referrals = w.referrals.get(sid, [])
    if kind == "identify":
        return _identify(draw, sid, at)
    if kind == "grant":
        return _grant(draw, w, sid, at)
    if kind == "withdraw":
        known = w.consents.get(sid, [])
        cid = draw(st.sampled_from(known)) if known else w.new_id("consent")
        return b.withdrawal(
            sid,
            consent_id=cid,
            categories=draw(st.lists(st.sampled_from(CATEGORIES), max_size=2, unique=True)),
            jurisdictions=draw(st.lists(st.sampled_from(JURISDICTIONS), max_size=2, unique=True)),
            cross_border=draw(st.booleans()),
            at=at,
        )
    if kind == "risk":
        return b.risk(sid, draw(st.sampled_from(list(RiskLevel))), at=at)
    if kind == "request" or not referrals:
        rid = w.new_id("referral")
        w.referrals.setdefault(sid, []).append(rid)
        return b.request(
            sid,
            rid,
            category=draw(st.sampled_from(CATEGORIES)),
            urgency=draw(st.sampled_from(list(Urgency))),
            languages=draw(st.lists(st.sampled_from(LANGUAGES), max_size=1)),
            gender_specific=draw(st.integers(0, 7)).__eq__(0),
            child=draw(_mostly(False)),
            accessible=draw(_mostly(False)),
            jurisdiction=draw(st.sampled_from(("NL", "NL", "NL", "NL-NH", "BE"))),
            at=at,
        )
    rid = draw(st.sampled_from(referrals))
    case = w.harness.cases.get(sid)
    current = case.referrals.get(rid) if case else None
    pid = current.provider_id if current and current.provider_id else w.providers[0]
    if draw(st.integers(0, 4)) == 0:
        pid = draw(st.sampled_from(w.providers))
    attempt = current.attempt if current and current.attempt else 1
    if draw(st.integers(0, 4)) == 0:
        attempt = draw(st.integers(1, 3))
    if kind == "timeout":
        return b.timeout(sid, rid, pid, at=at)
    if kind == "escalate":
        return _ladder_alert(draw, w, sid, rid, pid=pid, at=at)
    if kind == "cancel":
        return b.cancelled(sid, rid, at=at)
    if kind == "undelivered":
        what = draw(st.sampled_from((OFFER, OFFER, UndeliveredEvent.REFERRAL_CANCELLED)))
        return b.undelivered(sid, rid, pid, attempt, what=what, at=at)
    fitting = _ANSWERS.get(current.status if current else ReferralStatus.OFFERED, ())
    if not fitting or draw(st.integers(0, 4)) == 0:
        fitting = (b.accepted, b.declined, b.started, b.completed, b.failed)
    answer: Answer = draw(st.sampled_from(fitting))
    return answer(sid, rid, pid, attempt, at=at)


def _ladder_alert(
    draw: Draw, w: World, sid: UUID, rid: UUID, *, pid: UUID, at: datetime
) -> SurvivorEvent:
    """A well-behaved escalation engine's alert: the rung above every one published so far.

    Above rung 3 there is nothing left to publish; a (possibly stale) timeout
    stands in, which is what a late rung-1 copy would look like.
    """
    case = w.harness.cases.get(sid)
    current = case.referrals.get(rid) if case else None
    highest = max([0, *w.rungs.get(rid, ()), current.escalation_level if current else 0])
    if highest >= 3:
        return b.timeout(sid, rid, pid, at=at)
    return ReferralEscalated(
        survivor_id=sid,
        occurred_at=at,
        referral_id=rid,
        level=max(2, highest + 1),
        reason=draw(
            st.sampled_from((EscalationReason.DEADLINE_MISSED, EscalationReason.DELIVERY_FAILED))
        ),
        provider_id=pid,
        category=current.category if current else ServiceCategory.HOUSING,
        jurisdiction="NL",
    )


def _directory_event(draw: Draw, w: World) -> Event:
    pid = draw(st.sampled_from(w.providers))
    if draw(st.booleans()):
        total = draw(st.integers(0, 3))
        return b.capacity(
            pid,
            total,
            draw(st.integers(0, total)),
            category=draw(st.sampled_from(CATEGORIES)),
            at=w.clock,
        )
    registered = draw(registrations(pid))
    assert isinstance(registered, ProviderRegistered)
    return b.updated(registered, occurred_at=w.clock)


# --------------------------------------------------------------------------- checks


def _check_decision(w: World, event: SurvivorEvent, before: Directory, d: Decision) -> None:
    profile = w.oracle.identified.get(event.survivor_id)
    case = w.harness.cases.get(event.survivor_id)
    for offer in (e for e in d.events if isinstance(e, ReferralOffered)):
        assert profile is not None, "offer before identification"
        assert case is not None
        referral = case.referrals[offer.referral_id]
        entry = w.harness.directory.providers[offer.provider_id]
        assert entry.profile is not None
        # consent, independently of processors.consent
        assert referral.provider_jurisdiction is not None
        abroad = country_of(referral.provider_jurisdiction) != country_of(profile.jurisdiction)
        assert abroad == referral.cross_border
        assert w.oracle.consents_to(offer, abroad=abroad, now=event.occurred_at), "no consent"
        assert offer.category in entry.profile.categories
        # children
        if profile.age_group is not AgeGroup.ADULT or referral.requirements.child_specialised:
            assert entry.profile.child_specialised, "child routed to a non-specialist"
        # never twice, attempts count offers
        tried = w.oracle.offered.setdefault(offer.referral_id, [])
        assert offer.provider_id not in tried, "same provider twice"
        tried.append(offer.provider_id)
        assert offer.attempt == len(tried)
        # never beyond capacity
        places = entry.places[offer.category]
        assert places.reserved + places.held <= places.total
        assert entry.reserved_total <= entry.profile.capacity
        assert before.providers[offer.provider_id].available(offer.category) >= 1
        assert 0.0 <= offer.score <= 1.0 and offer.reasons
    # An engine's escalation counts as published, whatever the router made of it.
    if isinstance(event, ReferralEscalated) and event.referral_id is not None and not d.duplicate:
        w.rungs.setdefault(event.referral_id, set()).add(event.level)
    for escalation in (e for e in d.events if isinstance(e, ReferralEscalated)):
        if escalation.reason is EscalationReason.CHILD_PROTECTION:
            assert escalation.level == 3
        assert escalation.referral_id is not None
        published = w.rungs.setdefault(escalation.referral_id, set())
        assert escalation.level not in published, "a rung published twice for one referral"
        published.add(escalation.level)


def _check_world(w: World) -> None:
    directory = w.harness.directory
    assert w.harness.ledger_matches_cases(), "ledger differs from held places"
    for entry in directory.providers.values():
        for places in entry.places.values():
            if places.reserved + places.held <= places.total:
                assert places.reserved + places.held + places.available == places.total
            else:  # the provider shrank below what it already holds: no new offers
                assert places.available == 0
    for case in w.harness.cases.values():
        for referral in case.referrals.values():
            assert referral.status not in TRANSIENT
            assert len(set(referral.tried)) == len(referral.tried)
            assert referral.holds_place == (referral.status in HOLDING)
            assert referral.status_since is not None
            assert referral.status_since <= referral.updated_at


def _check_redelivery(w: World, draw: Draw) -> None:
    event, meta = draw(st.sampled_from(w.applied))
    case, directory = w.harness.cases[event.survivor_id], w.harness.directory
    again = w.harness.survivor(event, meta)
    assert again.duplicate and not again.changed
    assert again.effects == () and again.capacity == ()
    assert w.harness.cases[event.survivor_id] is case and w.harness.directory == directory


def _replay(w: World) -> None:
    """Replay the log into a fresh world, persisting each state as a table would."""
    cases: dict[UUID, dict[str, object]] = {}
    directory = Directory()
    for event, meta in w.harness.log:
        if isinstance(event, ProviderEvent):
            directory = apply_directory(directory, event)
            continue
        assert isinstance(event, SurvivorEvent)
        stored = cases.get(event.survivor_id)
        case = CaseState.from_dict(stored) if stored is not None else None
        d = decide(case, directory, event, meta, now=event.occurred_at, policy=POLICY)
        if d.changed:
            cases[event.survivor_id] = d.state.to_dict()
        directory = Directory.from_dict(d.directory.to_dict())
    assert {k: CaseState.from_dict(v) for k, v in cases.items()} == w.harness.cases
    assert directory == w.harness.directory


def _tally(seen: set[str], decision: Decision) -> None:
    for e in decision.events:
        name = type(e).__name__
        if isinstance(e, ReferralOffered):
            name += ":cross-border" if "jurisdiction:cross-border" in e.reasons else ""
            name += ":re-offer" if e.attempt > 1 else ""
        elif isinstance(e, ReferralEscalated | ReferralCancelled):
            name += f":{e.reason.value}"
        seen.add(name)
    if decision.rejection is not None:
        seen.add(f"rejected:{decision.rejection.code.value}")
    for audit in decision.audits:
        if audit.action is AuditAction.UNROUTABLE:
            seen.update(f"unroutable-because:{x.criterion.value}" for x in audit.exclusions)
        seen.update(
            f"audited:{r}"
            for r in audit.reasons
            if r.startswith(("escalation.", "offer.no-", "offer.never"))
        )


# --------------------------------------------------------------------------- the property


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_invariants_hold_over_any_event_sequence(data: st.DataObject) -> None:
    draw = data.draw
    w = World(
        providers=[b.uid(f"hp-{n}") for n in range(draw(st.integers(2, 6)))],
        survivors=[b.uid(f"hs-{n}") for n in range(draw(st.integers(1, 3)))],
    )
    for pid in w.providers:
        w.harness.feed(draw(registrations(pid)))
    seen: set[str] = set()
    for sid in w.survivors:  # most cases start the usual way: identified, then consent
        if draw(_mostly(True)):
            _apply(w, _identify(draw, sid, w.clock), seen)
            _apply(w, _grant(draw, w, sid, w.clock), seen)
    for _ in range(draw(st.integers(10, 40))):
        w.clock += timedelta(minutes=draw(st.integers(0, 180)))
        roll = draw(st.integers(0, 99))
        if roll < 8:
            w.harness.feed(_directory_event(draw, w))
        elif roll < 18 and w.applied:
            _check_redelivery(w, draw)
        elif roll == 18:
            _apply(w, b.closed(draw(st.sampled_from(w.survivors)), at=w.clock), seen)
        else:
            _apply(w, _survivor_event(draw, w, draw(st.sampled_from(w.survivors))), seen)
        _check_world(w)
    _replay(w)
    for name in sorted(seen):
        observe(name)  # coverage of the generator, shown by --hypothesis-show-statistics


def _apply(w: World, event: SurvivorEvent, seen: set[str]) -> None:
    """Feed one survivor event and check what the decision did."""
    before = w.harness.directory
    meta = w.harness.meta(event)
    decision = w.harness.survivor(event, meta)
    if decision.changed:
        w.oracle.see(event)
        w.applied.append((event, meta))
    _check_decision(w, event, before, decision)
    _tally(seen, decision)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_refused_event_is_refused_again_and_still_changes_nothing(data: st.DataObject) -> None:
    draw = data.draw
    w = World(providers=[b.uid("hp-0")], survivors=[b.uid("hs-0")])
    w.harness.feed(draw(registrations(w.providers[0])))
    sid = w.survivors[0]
    for _ in range(draw(st.integers(1, 15))):
        event = _survivor_event(draw, w, sid)
        meta = w.harness.meta(event)
        decision = w.harness.survivor(event, meta)
        if decision.rejection is None:
            continue
        case, directory = w.harness.cases.get(sid), w.harness.directory
        again = w.harness.survivor(event, meta)
        assert again.rejection == decision.rejection
        assert not again.changed and again.capacity == () and again.events == ()
        assert w.harness.cases.get(sid) is case and w.harness.directory == directory
