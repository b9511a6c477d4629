"""The matching engine, one criterion at a time, and the provider directory's ledger.

Each test sets up a survivor and a directory where exactly one thing is
wrong (or right) and checks both the outcome and the recorded reason: an
offer with its reason codes, or an exclusion counted under the criterion.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml

from processors.case import ReferralState
from processors.directory import (
    CapacityAction,
    CapacityChange,
    Directory,
    Places,
    apply_capacity,
    apply_directory,
    apply_directory_entry,
)
from processors.effects import Decision
from processors.exceptions import LedgerError, SlaPolicyError, UnsupportedEventError
from processors.lifecycle import ReferralStatus
from processors.policy import RoutingPolicy, both_ways
from processors.routing import Criterion, Need, match
from processors.settings import RouterSettings
from processors.sla import default_policy
from schemas.models import ReferralEscalated, ReferralOffered, SurvivorEvent
from schemas.types import (
    AgeGroup,
    EscalationReason,
    Gender,
    RiskLevel,
    ServiceCategory,
    Urgency,
)

from .domain_builders import (
    HOUSING,
    T0,
    Harness,
    capacity,
    consent,
    declined,
    identified,
    provider,
    request,
    risk,
    uid,
    updated,
)

S, R = uid("survivor"), uid("referral")
P1, P2, P3 = uid("p1"), uid("p2"), uid("p3")
NL_BE = RoutingPolicy(cross_border_pairs=both_ways([("NL", "BE")]))
HEALTH = ServiceCategory.HEALTH
POLICY = default_policy()


def route(
    *providers: SurvivorEvent | Any,
    survivor: Mapping[str, Any] | None = None,
    grant: Mapping[str, Any] | None = None,
    req: Mapping[str, Any] | None = None,
    policy: RoutingPolicy | None = None,
) -> tuple[Harness, Decision]:
    """Register ``providers``, identify and consent the survivor, request; that decision."""
    h = Harness(policy=policy or RoutingPolicy())
    h.all(*providers)
    h.all(identified(S, **(survivor or {})), consent(S, **(grant or {})))
    return h, h.survivor(request(S, R, **(req or {})))


def offered_to(decision: Decision) -> UUID | None:
    offers = [e for e in decision.events if isinstance(e, ReferralOffered)]
    return offers[0].provider_id if offers else None


def excluded(decision: Decision) -> dict[Criterion, int]:
    audit = decision.audits[-1]
    return {x.criterion: x.count for x in audit.exclusions}


def reasons(decision: Decision) -> tuple[str, ...]:
    offer = decision.events[0]
    assert isinstance(offer, ReferralOffered)
    return offer.reasons


# --------------------------------------------------------------------------- category


def test_only_providers_of_the_category_are_candidates() -> None:
    _, d = route(provider(P1, categories=[ServiceCategory.HEALTH]), provider(P2))
    assert offered_to(d) == P2
    assert excluded(d) == {Criterion.CATEGORY: 1}
    assert "category:housing" in reasons(d)


def test_a_provider_known_only_by_its_capacity_is_not_offered_anything() -> None:
    _, d = route(capacity(P1, 3, 3))
    assert offered_to(d) is None
    assert excluded(d) == {Criterion.PROFILE: 1}


# --------------------------------------------------------------------------- jurisdiction


def test_a_provider_elsewhere_in_the_country_does_not_serve_the_requested_area() -> None:
    _, d = route(
        provider(P1, jurisdictions=["NL-NH"]),
        survivor={"jurisdiction": "NL-ZH"},
        req={"jurisdiction": "NL-ZH"},
    )
    assert offered_to(d) is None
    assert excluded(d) == {Criterion.JURISDICTION: 1}


def test_a_nationwide_provider_serves_a_subdivision_and_exact_area_ranks_first() -> None:
    _, d = route(
        provider(P1, jurisdictions=["NL"]),
        provider(P2, jurisdictions=["NL-ZH"]),
        survivor={"jurisdiction": "NL-ZH"},
        req={"jurisdiction": "NL-ZH"},
    )
    assert offered_to(d) == P2
    candidates = d.audits[-1].candidates
    assert [c.provider_id for c in candidates] == [P2, P1]
    assert candidates[1].jurisdiction == "NL-ZH"  # where the data goes: the narrower area


def test_a_provider_abroad_needs_cross_border_consent() -> None:
    abroad = provider(P1, jurisdictions=["BE"], cross_border=True)
    _, refused = route(abroad, policy=NL_BE, grant={"cross_border": False})
    assert offered_to(refused) is None
    assert excluded(refused) == {Criterion.CONSENT: 1}
    _, home_only = route(abroad, policy=NL_BE, grant={"cross_border": True})
    assert offered_to(home_only) is None  # consent lists no foreign jurisdiction
    _, allowed = route(
        abroad, policy=NL_BE, grant={"cross_border": True, "jurisdictions": ["NL", "BE"]}
    )
    assert offered_to(allowed) == P1
    assert "jurisdiction:cross-border" in reasons(allowed)


def test_a_provider_abroad_needs_an_allowed_pair() -> None:
    abroad = provider(P1, jurisdictions=["DE"], cross_border=True)
    grant = {"cross_border": True, "jurisdictions": ["NL", "DE"]}
    _, d = route(abroad, policy=NL_BE, grant=grant)
    assert offered_to(d) is None
    assert excluded(d) == {Criterion.CROSS_BORDER: 1}
    nl_de = RoutingPolicy(cross_border_pairs=frozenset({("NL", "DE")}))
    assert offered_to(route(abroad, policy=nl_de, grant=grant)[1]) == P1


def test_pairs_are_directed() -> None:
    one_way = RoutingPolicy(cross_border_pairs=frozenset({("BE", "NL")}))
    assert one_way.allows_cross_border("BE-VLG", "NL")
    assert not one_way.allows_cross_border("NL", "BE")


def test_a_provider_abroad_must_itself_accept_cross_border_referrals() -> None:
    _, d = route(
        provider(P1, jurisdictions=["BE"], cross_border=False),
        policy=NL_BE,
        grant={"cross_border": True, "jurisdictions": ["NL", "BE"]},
    )
    assert excluded(d) == {Criterion.CROSS_BORDER: 1}


def test_a_local_provider_is_preferred_to_one_abroad() -> None:
    _, d = route(
        provider(P1, jurisdictions=["BE"], cross_border=True, capacity=50),
        provider(P2, jurisdictions=["NL"], capacity=1),
        policy=NL_BE,
        grant={"cross_border": True, "jurisdictions": ["NL", "BE"]},
    )
    assert offered_to(d) == P2


def test_a_service_requested_abroad_goes_only_to_providers_there() -> None:
    _, d = route(
        provider(P1, jurisdictions=["NL"]),
        provider(P2, jurisdictions=["BE"], cross_border=True),
        provider(P3, jurisdictions=["DE"], cross_border=True),
        policy=RoutingPolicy(cross_border_pairs=frozenset({("NL", "BE"), ("NL", "DE")})),
        grant={"cross_border": True, "jurisdictions": ["BE", "DE"]},
        req={"jurisdiction": "BE"},
    )
    assert offered_to(d) == P2
    assert excluded(d) == {Criterion.JURISDICTION: 2}


# --------------------------------------------------------------------------- language


def test_a_provider_without_a_common_language_or_interpreter_is_excluded() -> None:
    _, d = route(provider(P1, languages=["fr"]), survivor={"languages": ["ro"]})
    assert offered_to(d) is None
    assert excluded(d) == {Criterion.LANGUAGE: 1}


def test_interpretation_is_accepted_but_a_common_language_ranks_higher() -> None:
    _, only = route(
        provider(P1, languages=["fr"], interpretation=True), survivor={"languages": ["ro"]}
    )
    assert offered_to(only) == P1 and "interpretation" in reasons(only)
    _, both = route(
        provider(P1, languages=["fr"], interpretation=True),
        provider(P2, languages=["ro"]),
        survivor={"languages": ["ro"]},
    )
    assert offered_to(both) == P2 and "language:ro" in reasons(both)


def test_the_survivors_preferred_language_ranks_higher() -> None:
    _, d = route(
        provider(P1, languages=["en"]),
        provider(P2, languages=["ro"]),
        survivor={"languages": ["ro", "en"]},
    )
    assert offered_to(d) == P2


def test_a_survivor_without_languages_can_be_served_in_any_language() -> None:
    _, d = route(
        provider(P1, languages=["fr"]),
        provider(P2, languages=["ro"]),
        survivor={"languages": []},
    )
    assert offered_to(d) == min(P1, P2, key=str)  # language no longer tells them apart
    assert Criterion.LANGUAGE not in excluded(d)
    assert "language:any" in reasons(d)
    candidates = d.audits[-1].candidates
    assert [c.score for c in candidates] == [candidates[0].score] * 2
    assert all("language:any" in c.reasons for c in candidates)


def test_requested_languages_replace_the_survivors() -> None:
    _, d = route(
        provider(P1, languages=["en"]),
        survivor={"languages": ["en"]},
        req={"languages": ["uk"]},
    )
    assert excluded(d) == {Criterion.LANGUAGE: 1}


# --------------------------------------------------------------------------- children


@pytest.mark.parametrize("age", [AgeGroup.MINOR, AgeGroup.UNKNOWN])
def test_a_minor_or_person_of_unknown_age_goes_only_to_child_specialists(age: AgeGroup) -> None:
    _, d = route(
        provider(P1, capacity=50), provider(P2, child=True, capacity=1), survivor={"age": age}
    )
    assert offered_to(d) == P2
    assert excluded(d) == {Criterion.CHILD: 1}
    assert "child-specialised" in reasons(d)


def test_a_child_without_a_specialist_escalates_for_child_protection() -> None:
    h, d = route(provider(P1), survivor={"age": AgeGroup.UNKNOWN})
    (escalation,) = d.events
    assert isinstance(escalation, ReferralEscalated)
    assert escalation.reason is EscalationReason.CHILD_PROTECTION and escalation.level == 3
    assert excluded(d) == {Criterion.CHILD: 1}
    assert h.referral(S, R).status is ReferralStatus.UNROUTABLE


def test_a_request_for_a_child_specialist_is_honoured_for_an_adult() -> None:
    _, d = route(provider(P1), req={"child": True})
    assert excluded(d) == {Criterion.CHILD: 1}


def test_adults_prefer_services_not_specialised_in_children() -> None:
    _, d = route(provider(P1, child=True), provider(P2))
    assert offered_to(d) == P2


# --------------------------------------------------------------------------- gender, access


def test_a_gender_specific_provider_serves_only_its_gender() -> None:
    _, d = route(provider(P1, gender=Gender.FEMALE), survivor={"gender": Gender.MALE})
    assert excluded(d) == {Criterion.GENDER: 1}


def test_a_gender_specific_request_needs_a_provider_for_the_survivors_gender() -> None:
    _, d = route(
        provider(P1),
        provider(P2, gender=Gender.MALE),
        provider(P3, gender=Gender.FEMALE),
        req={"gender_specific": True},
    )
    assert offered_to(d) == P3
    assert excluded(d) == {Criterion.GENDER: 2}
    assert "gender-specific" in reasons(d)


def test_accessibility_is_required_when_asked_for() -> None:
    _, d = route(provider(P1), provider(P2, accessible=True), req={"accessible": True})
    assert offered_to(d) == P2
    assert excluded(d) == {Criterion.ACCESSIBILITY: 1}
    assert "accessible" in reasons(d)


# --------------------------------------------------------------------------- capacity


def test_a_provider_without_places_is_not_offered() -> None:
    _, d = route(provider(P1, capacity=0))
    assert excluded(d) == {Criterion.CAPACITY: 1}


def test_a_capacity_report_with_no_place_available_stops_offers() -> None:
    _, d = route(provider(P1, capacity=10), capacity(P1, 4, 0))
    assert excluded(d) == {Criterion.CAPACITY: 1}


def test_the_registered_capacity_caps_all_categories_together() -> None:
    h = Harness()
    both = [HOUSING, ServiceCategory.HEALTH]
    h.all(provider(P1, categories=both, capacity=1), identified(S), consent(S))
    assert offered_to(h.survivor(request(S, R))) == P1
    second = h.survivor(request(S, uid("r2"), category=ServiceCategory.HEALTH))
    assert offered_to(second) is None
    assert excluded(second) == {Criterion.CAPACITY: 1}


def test_places_taken_outside_safepassage_count() -> None:
    h = Harness()
    h.all(provider(P1, capacity=10), capacity(P1, 3, 1), identified(S), consent(S))
    assert offered_to(h.survivor(request(S, R))) == P1
    assert h.directory.providers[P1].places[HOUSING].available == 0
    assert offered_to(h.survivor(request(S, uid("r2")))) is None


def test_free_capacity_breaks_otherwise_equal_scores() -> None:
    _, d = route(provider(P1, capacity=1), provider(P2, capacity=5), capacity(P1, 4, 1))
    assert offered_to(d) == P2


# --------------------------------------------------------------------------- tried, ranking


def test_a_provider_is_never_offered_the_same_referral_twice() -> None:
    h, _ = route(provider(P1), provider(P2, languages=["fr"], interpretation=True))
    second = h.survivor(declined(S, R, P1, 1))
    assert offered_to(second) == P2
    assert excluded(second) == {Criterion.ALREADY_TRIED: 1}
    last = h.survivor(declined(S, R, P2, 2))
    assert offered_to(last) is None
    assert excluded(last) == {Criterion.ALREADY_TRIED: 2}


def _twins(ids: Iterable[UUID]) -> list[Any]:
    return [provider(pid) for pid in ids]


def test_ties_go_to_the_smallest_provider_id_whatever_the_directory_order() -> None:
    ids = [uid(f"twin-{n}") for n in range(6)]
    expected = min(ids, key=str)
    for order in (ids, list(reversed(ids)), sorted(ids, key=lambda u: u.int % 7)):
        _, d = route(*_twins(order))
        assert offered_to(d) == expected
        ranked = [c.provider_id for c in d.audits[-1].candidates]
        assert ranked == sorted(ids, key=str)


def test_scores_lie_in_the_unit_interval_and_rank_in_order() -> None:
    _, d = route(
        provider(P1, languages=["fr"], interpretation=True, capacity=1),
        provider(P2, jurisdictions=["BE"], cross_border=True),
        provider(P3),
        policy=NL_BE,
        grant={"cross_border": True, "jurisdictions": ["NL", "BE"]},
    )
    scores = [c.score for c in d.audits[-1].candidates]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert offered_to(d) == P3


def test_the_audit_lists_at_most_the_configured_number_of_candidates() -> None:
    ids = [uid(f"many-{n}") for n in range(5)]
    _, d = route(*_twins(ids), policy=RoutingPolicy(audit_candidates=2))
    assert len(d.audits[-1].candidates) == 2


def test_match_is_a_pure_function_of_its_inputs() -> None:
    h, _ = route(provider(P1), provider(P2))
    case = h.cases[S]
    assert case.profile is not None
    referral: ReferralState = case.referrals[R]
    need = Need.of(case.profile, referral)
    one = match(need, case.consents.values(), h.directory, T0, h.policy)
    two = match(need, case.consents.values(), h.directory, T0, h.policy)
    assert one == two and one.best is not None


# --------------------------------------------------------------------------- directory


def test_registration_gives_each_category_the_registered_total() -> None:
    d = apply_directory(
        Directory(), provider(P1, categories=[HOUSING, ServiceCategory.HEALTH], capacity=4)
    )
    places = d.providers[P1].places
    assert places[HOUSING] == Places(total=4) == places[ServiceCategory.HEALTH]


def test_an_update_replaces_the_profile_and_keeps_reservations_and_reports() -> None:
    registered = provider(P1, capacity=4)
    d = apply_directory(Directory(), registered)
    d = apply_directory(d, capacity(P1, 6, 6))
    d = apply_capacity(
        d,
        [
            CapacityChange(
                action=CapacityAction.RESERVE, provider_id=P1, category=HOUSING, referral_id=R
            )
        ],
    )
    d = apply_directory(
        d, updated(registered, capacity=9, languages=("nl",), categories=(ServiceCategory.HEALTH,))
    )
    entry = d.providers[P1]
    assert entry.profile is not None and entry.profile.languages == ("nl",)
    assert entry.places[HOUSING].total == 6 and entry.places[HOUSING].holders == {R}
    assert entry.places[ServiceCategory.HEALTH].total == 9


def test_an_entry_offers_no_place_before_registration_nor_in_a_category_it_lacks() -> None:
    reported = apply_directory_entry(None, capacity(P1, 3, 3))
    assert reported.places[HOUSING].available == 3  # the report is kept ...
    assert reported.available(HOUSING) == 0  # ... but nothing is offered without a profile
    registered = apply_directory_entry(reported, provider(P1, categories=[HOUSING]))
    assert registered.available(HOUSING) == 3
    assert HEALTH not in registered.places
    assert registered.available(HEALTH) == 0
    assert registered.available(HEALTH, holder=R) == 0  # not even for a would-be holder


def test_a_capacity_report_counts_reservations_as_taken() -> None:
    places = Places(total=5).reserve(R).reserve(uid("r2"))
    reported = places.report(total=5, available=2)
    assert (reported.reserved, reported.held, reported.available) == (2, 1, 2)
    assert reported.reserved + reported.held + reported.available == reported.total


def test_capacity_changes_are_idempotent() -> None:
    d = apply_directory(Directory(), provider(P1))
    reserve = CapacityChange(
        action=CapacityAction.RESERVE, provider_id=P1, category=HOUSING, referral_id=R
    )
    release = reserve.model_copy(update={"action": CapacityAction.RELEASE})
    once = apply_capacity(d, [reserve])
    assert apply_capacity(once, [reserve]) == once
    assert apply_capacity(apply_capacity(once, [release]), [release]) == d


def test_a_reservation_at_an_unknown_provider_is_a_ledger_error() -> None:
    change = CapacityChange(
        action=CapacityAction.RESERVE, provider_id=P1, category=HOUSING, referral_id=R
    )
    with pytest.raises(LedgerError):
        apply_capacity(Directory(), [change])
    assert (
        apply_capacity(Directory(), [change.model_copy(update={"action": CapacityAction.RELEASE})])
        == Directory()
    )


def test_the_ledger_holds_exactly_the_offered_place() -> None:
    h, d = route(provider(P1), provider(P2))
    chosen = offered_to(d)
    assert chosen is not None
    assert list(h.cases[S].holdings()) == [(chosen, HOUSING, R)]
    assert h.directory.providers[chosen].places[HOUSING].holders == {R}
    assert h.ledger_matches_cases()
    h.directory = apply_capacity(
        h.directory,
        [
            CapacityChange(
                action=CapacityAction.RELEASE, provider_id=chosen, category=HOUSING, referral_id=R
            )
        ],
    )
    assert not h.ledger_matches_cases()  # the oracle of the invariant tests can fail


def test_directory_events_only() -> None:
    with pytest.raises(UnsupportedEventError):
        apply_directory(Directory(), identified(S))  # type: ignore[arg-type]
    with pytest.raises(UnsupportedEventError, match="SurvivorIdentified is not a directory event"):
        apply_directory_entry(None, identified(S))  # type: ignore[arg-type]
    entry = apply_directory_entry(None, provider(P1))
    with pytest.raises(UnsupportedEventError):
        apply_directory_entry(entry, provider(P2))


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="idempotency_window"):
        RoutingPolicy(idempotency_window=0)
    with pytest.raises(ValueError, match="audit_candidates must not be negative"):
        RoutingPolicy(audit_candidates=-1)
    assert RoutingPolicy(audit_candidates=0).audit_candidates == 0  # exclusions only


# --------------------------------------------------------------------------- deadlines from SLA


def _sla_file(tmp_path: Path) -> Path:
    """The shipped SLA file with a health override and a stricter child factor."""
    text = resources.files("processors").joinpath("sla_policy.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    data["categories"] = {"HEALTH": {"acknowledge": {"routine": "10h"}}}
    data["shorter_for"] = {"child": 0.25, "critical_risk": 0.5}
    path = tmp_path / "sla.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("category", "age", "level", "hours"),
    [
        (HOUSING, AgeGroup.ADULT, RiskLevel.LOW, 72),  # the base routine window
        (HEALTH, AgeGroup.ADULT, RiskLevel.LOW, 10),  # the category override
        (HEALTH, AgeGroup.MINOR, RiskLevel.LOW, 2.5),  # override, then the child factor
        (HOUSING, AgeGroup.UNKNOWN, RiskLevel.LOW, 18),  # unknown age counts as a child
        (HOUSING, AgeGroup.ADULT, RiskLevel.CRITICAL, 36),
        (HOUSING, AgeGroup.MINOR, RiskLevel.CRITICAL, 18),  # strictest factor, not compounded
    ],
)
def test_offer_deadlines_follow_the_configured_sla_policy_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    category: ServiceCategory,
    age: AgeGroup,
    level: RiskLevel,
    hours: float,
) -> None:
    """The router tells the provider the deadline the escalation ladder will act on."""
    monkeypatch.setenv("SAFEPASSAGE_ROUTER_SLA_POLICY", str(_sla_file(tmp_path)))
    policy = RouterSettings().to_policy()
    assert policy.sla is not None
    h = Harness(policy=policy)
    h.all(
        provider(P1, categories=(HOUSING, HEALTH), child=True),
        identified(S, age=age),
        consent(S),
        risk(S, level),
    )
    offer = h.survivor(request(S, R, category=category, urgency=Urgency.ROUTINE)).events[0]
    assert isinstance(offer, ReferralOffered)
    assert offer.deadline == T0 + timedelta(hours=hours)
    assert h.referral(S, R).deadline == offer.deadline


def test_offer_deadlines_from_the_sla_policy_follow_its_demo_time_scale() -> None:
    demo = default_policy().model_copy(update={"time_scale": 60.0})
    _, d = route(provider(P1), policy=RoutingPolicy(sla=demo))
    offer = d.events[0]
    assert isinstance(offer, ReferralOffered)
    assert offer.deadline == T0 + timedelta(minutes=72)  # 72 SLA hours in 72 real minutes


def test_an_unknown_urgency_gets_the_shortest_sla_window() -> None:
    """The SLA file's rule (when in doubt, faster) replaces the routing fallback's 24 h."""
    _, d = route(provider(P1), req={"urgency": Urgency.UNKNOWN}, policy=RoutingPolicy(sla=POLICY))
    offer = d.events[0]
    assert isinstance(offer, ReferralOffered)
    assert offer.deadline == T0 + timedelta(hours=1)


def test_router_settings_default_to_the_shipped_sla_policy() -> None:
    assert RouterSettings().sla_policy is None
    assert RouterSettings().to_policy().sla == default_policy()


def test_router_settings_refuse_an_invalid_sla_policy_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nacknowledge: {emergency: 0h}\n", encoding="utf-8")
    monkeypatch.setenv("SAFEPASSAGE_ROUTER_SLA_POLICY", str(bad))
    with pytest.raises(SlaPolicyError, match=r"acknowledge\.emergency"):
        RouterSettings().to_policy()
