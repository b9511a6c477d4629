"""The live demo's script against the router's own rules: what it is designed to show, it shows.

Each archetype is played through the pure core (``decide``, as the router
worker runs it) on the fresh demo directory, imported from the demo HSDS
file as the run imports it, with the demo's cross-border pairs and SLA
policy: the first offer goes to the provider the plan names, and the
providers' behaviours then lead to the outcomes the demo promises
(accepted, declined then accepted, re-offered after silence, unroutable,
cross-border).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.auth import Role
from connectors.demo import plan
from connectors.demo.plan import (
    ARCHETYPES,
    BEHAVIOURS,
    CATEGORIES,
    AnswerKind,
    Archetype,
    Behaviour,
    PlannedReferral,
    answers,
    behaviour_of,
    expected_levels,
    survivor,
)
from connectors.directory.demo import PROVIDERS, demo_directory
from connectors.directory.hsds import read_listings
from connectors.platform.demo import DEMO_PRINCIPALS
from processors.escalation import first_rung
from processors.lifecycle import ReferralStatus
from processors.policy import RoutingPolicy
from processors.sla import load_policy
from schemas.models import (
    ConsentGranted,
    ReferralDeclined,
    ReferralEscalated,
    ReferralRequested,
    RiskAssessed,
    SurvivorIdentified,
)
from schemas.types import DeclineReason, EscalationReason, Requirements
from tests.unit.domain_builders import Harness

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEMO_POLICY = Path(__file__).resolve().parents[2] / "infra" / "demo" / "sla-policy.yaml"
SLUG = {provider.provider_id: provider.slug for provider in PROVIDERS}


# ------------------------------------------------------------------------- providers


def test_every_demo_provider_has_a_behaviour_and_every_behaviour_is_used() -> None:
    assert set(BEHAVIOURS) == {provider.slug for provider in PROVIDERS}
    assert set(BEHAVIOURS.values()) == set(Behaviour)
    for provider in PROVIDERS:
        assert behaviour_of(provider.provider_id) is BEHAVIOURS[provider.slug]
    assert behaviour_of(uuid.uuid4()) is Behaviour.PROMPT  # a provider outside the directory


def test_each_behaviour_answers_as_its_name_says() -> None:
    def kinds(slug: str) -> list[AnswerKind]:
        provider = next(p for p in PROVIDERS if p.slug == slug)
        return [answer.kind for answer in answers(provider.provider_id)]

    assert kinds("nl-lantern") == [AnswerKind.ACCEPT, AnswerKind.START, AnswerKind.COMPLETE]
    assert kinds("be-quill") == []  # silent
    assert kinds("de-oak-men") == [AnswerKind.ACCEPT, AnswerKind.START, AnswerKind.FAIL]
    decliners = [p for p in PROVIDERS if BEHAVIOURS[p.slug] is Behaviour.DECLINER]
    for provider in decliners:
        (answer,) = answers(provider.provider_id)
        assert answer.kind is AnswerKind.DECLINE
        assert answer.reason in set(DeclineReason) - {DeclineReason.OTHER, DeclineReason.UNKNOWN}
    policy = load_policy(DEMO_POLICY)
    emergency = policy.scaled(policy.acknowledge.emergency).total_seconds()
    routine = policy.scaled(policy.acknowledge.routine).total_seconds()
    slow = next(p for p in PROVIDERS if BEHAVIOURS[p.slug] is Behaviour.SLOW)
    slow_accept = answers(slow.provider_id)[0].after_s
    prompt_accept = answers(PROVIDERS[0].provider_id)[0].after_s
    assert prompt_accept < emergency / 2 < emergency < slow_accept < routine


# ------------------------------------------------------------------------- survivors


@given(start=st.integers(min_value=0, max_value=10_000))
def test_every_category_is_asked_for_within_one_cycle_from_any_survivor(start: int) -> None:
    asked = {
        referral.category
        for number in range(start, start + len(ARCHETYPES))
        for _, referral in survivor(uuid.uuid4(), number).referrals
    }
    assert asked == set(CATEGORIES)


def test_the_first_survivors_reach_every_category_and_every_rung() -> None:
    """What the integration test waits for comes early: categories in 3 survivors, rungs in 2."""
    first = ARCHETYPES[:3]
    answered = {  # offered to a provider that answers: it stays visible, not unroutable
        r.category
        for a in first
        for r in a.referrals
        if r.first is not None and BEHAVIOURS[r.first] is not Behaviour.SILENT
    }
    assert answered == set(CATEGORIES)
    levels = set().union(*(expected_levels(a, r) for a in ARCHETYPES[:2] for r in a.referrals))
    assert {1, 2} <= levels
    # ... and 3 once the silent clinic's re-offer finds nobody (played below).
    assert ARCHETYPES[1].referrals[0].first == "be-quill"


@given(run=st.uuids(), number=st.integers(min_value=0, max_value=100_000))
def test_a_planned_survivor_is_reproducible_consented_and_fictional(
    run: uuid.UUID, number: int
) -> None:
    planned = survivor(run, number)
    assert planned == survivor(run, number)
    assert planned.archetype is ARCHETYPES[number % len(ARCHETYPES)]
    ids = {planned.survivor_id, planned.consent_id, *planned.referral_ids}
    assert len(ids) == 2 + len(planned.referral_ids)
    assert survivor(run, number + 1).survivor_id != planned.survivor_id
    categories = {referral.category for _, referral in planned.referrals}
    assert categories == set(planned.archetype.consent_categories)
    assert all("fictional" in value or "demo" in value for value in planned.personal_data.values())


def test_a_negative_survivor_number_is_refused() -> None:
    with pytest.raises(ValueError, match="start at 0"):
        survivor(uuid.uuid4(), -1)


def test_every_demo_agency_has_a_demo_key() -> None:
    agencies = {p.agency_id for p in DEMO_PRINCIPALS if p.role is Role.AGENCY}
    assert set(plan.AGENCIES.values()) <= agencies
    assert {a.agency_id for a in ARCHETYPES} <= agencies


# ------------------------------------------------------------- played by the router's rules


def _harness() -> Harness:
    policy = RoutingPolicy(
        cross_border_pairs=frozenset(plan.CROSS_BORDER_PAIRS), sla=load_policy(DEMO_POLICY)
    )
    harness = Harness(policy=policy)
    for listing in read_listings(demo_directory()):  # what the run imports
        harness.feed(listing.entry.registered(T0, None))
        for figure in listing.capacities:
            harness.feed(figure.event(listing.entry.provider_id, T0))
    return harness


def _open_case(harness: Harness, archetype: Archetype, sid: uuid.UUID) -> None:
    agency = archetype.agency_id
    harness.feed(
        SurvivorIdentified(
            survivor_id=sid,
            occurred_at=T0,
            agency_id=agency,
            jurisdiction=archetype.jurisdiction,
            age_group=archetype.age_group,
            languages=archetype.languages,
            gender=archetype.gender,
        )
    )
    harness.feed(
        ConsentGranted(
            survivor_id=sid,
            occurred_at=T0,
            consent_id=uuid.uuid5(sid, "consent"),
            agency_id=agency,
            categories=archetype.consent_categories,
            cross_border_allowed=archetype.cross_border,
            jurisdictions=archetype.consent_jurisdictions,
        )
    )
    harness.feed(
        RiskAssessed(
            survivor_id=sid,
            occurred_at=T0,
            agency_id=agency,
            level=archetype.risk,
            immediate_needs=archetype.needs,
        )
    )


def _request(harness: Harness, archetype: Archetype, sid: uuid.UUID, rid: uuid.UUID,
             referral: PlannedReferral) -> None:  # fmt: skip
    harness.feed(
        ReferralRequested(
            survivor_id=sid,
            occurred_at=T0,
            referral_id=rid,
            agency_id=archetype.agency_id,
            category=referral.category,
            urgency=referral.urgency,
            requirements=Requirements(
                languages=referral.languages,
                gender_specific=referral.gender_specific,
                child_specialised=referral.child_specialised,
                accessibility=referral.accessibility,
                jurisdiction=referral.jurisdiction,
            ),
        )
    )


def _play(harness: Harness, sid: uuid.UUID, rid: uuid.UUID, archetype: Archetype) -> list[str]:
    """Offer after offer until one is taken or nobody is left: the providers' slugs, in order."""
    offered: list[str] = []
    at = T0
    while (state := harness.referral(sid, rid)).status is ReferralStatus.OFFERED:
        assert state.provider_id is not None
        offered.append(SLUG[state.provider_id])
        behaviour = behaviour_of(state.provider_id)
        at += timedelta(minutes=1)
        if behaviour is Behaviour.DECLINER:
            (answer,) = answers(state.provider_id)
            assert isinstance(answer.reason, DeclineReason)
            harness.feed(
                ReferralDeclined(
                    survivor_id=sid,
                    occurred_at=at,
                    referral_id=rid,
                    provider_id=state.provider_id,
                    attempt=state.attempt,
                    reason=answer.reason,
                )
            )
        elif behaviour is Behaviour.SILENT:
            harness.feed(  # the ladder's rung-1 timeout at the missed deadline
                ReferralEscalated(
                    survivor_id=sid,
                    occurred_at=at,
                    referral_id=rid,
                    level=1,
                    reason=EscalationReason.DEADLINE_MISSED,
                    missed_deadline=at,
                    provider_id=state.provider_id,
                    category=state.category,
                    jurisdiction=archetype.jurisdiction,
                )
            )
        else:
            break  # prompt, slow (in time for these urgencies), failing: it accepts
    return offered


def test_each_planned_referral_reaches_the_designed_provider_first_and_plays_out_as_told() -> None:
    outcomes: dict[str, int] = {}
    for archetype in ARCHETYPES:
        harness = _harness()
        sid = uuid.uuid5(uuid.NAMESPACE_URL, f"demo-plan:{archetype.name}")
        _open_case(harness, archetype, sid)
        for index, referral in enumerate(archetype.referrals):
            rid = uuid.uuid5(sid, f"referral/{index}")
            _request(harness, archetype, sid, rid, referral)
            state = harness.referral(sid, rid)
            where = f"{archetype.name} #{index} {referral.category.value}"
            if referral.first is None:
                assert state.status is ReferralStatus.UNROUTABLE, where
                outcomes["unroutable by design"] = outcomes.get("unroutable by design", 0) + 1
                continue
            assert state.provider_id is not None, where
            assert SLUG[state.provider_id] == referral.first, where
            if archetype.cross_border and not referral.jurisdiction.startswith(archetype.country):
                assert state.cross_border, where
                outcomes["cross-border"] = outcomes.get("cross-border", 0) + 1
            first = BEHAVIOURS[referral.first]
            if first is Behaviour.SILENT:
                case = harness.cases[sid]
                assert expected_levels(archetype, referral) == {1, first_rung(case, state)}, where
            offered = _play(harness, sid, rid, archetype)
            final = harness.referral(sid, rid).status
            if len(offered) == 1 and final is ReferralStatus.OFFERED:
                kind = "accepted at once"
            elif final is ReferralStatus.OFFERED:
                kind = f"{first.value}, then accepted by another"
            else:
                assert final is ReferralStatus.UNROUTABLE, where
                kind = f"{first.value}, then nobody left"
            outcomes[kind] = outcomes.get(kind, 0) + 1
    assert set(outcomes) == {
        "accepted at once",
        "decliner, then accepted by another",
        "silent, then accepted by another",
        "decliner, then nobody left",
        "silent, then nobody left",
        "unroutable by design",
        "cross-border",
    }, outcomes
