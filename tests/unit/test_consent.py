"""Consent: what a grant allows, expiry, withdrawal, and how withdrawal reaches providers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from processors.consent import (
    ConsentGrant,
    ConsentTerms,
    WithdrawnScope,
    consent_summary,
    has_consent_for,
    permitting_grant,
)
from processors.effects import RejectionCode
from processors.lifecycle import ReferralStatus
from processors.policy import RoutingPolicy, both_ways
from schemas.models import ReferralCancelled, ReferralEscalated, ReferralOffered
from schemas.types import Actor, CancelReason, ServiceCategory

from .domain_builders import (
    HOUSING,
    T0,
    Harness,
    accepted,
    consent,
    identified,
    provider,
    request,
    started,
    uid,
    withdrawal,
)

HEALTH = ServiceCategory.HEALTH
S, R, R2 = uid("survivor"), uid("referral"), uid("referral-2")
P1, P2 = uid("p1"), uid("p2")
C1, C2 = uid("c1"), uid("c2")
HOUR = timedelta(hours=1)


def grant(**changes: object) -> ConsentGrant:
    return ConsentGrant.from_event(consent(S, consent_id=C1, **changes))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the grant alone


def test_a_grant_permits_only_its_categories() -> None:
    g = grant(categories=[HOUSING])
    assert g.permits(HOUSING, "NL", home="NL", abroad=False, now=T0)
    assert not g.permits(HEALTH, "NL", home="NL", abroad=False, now=T0)


def test_an_empty_jurisdiction_list_means_the_jurisdiction_of_identification() -> None:
    g = grant()
    assert g.permits(HOUSING, "NL-NH", home="NL", abroad=False, now=T0)
    assert not g.permits(HOUSING, "NL", home="NL-NH", abroad=False, now=T0)
    assert not g.permits(HOUSING, "BE", home="NL", abroad=True, now=T0)


def test_sharing_abroad_needs_cross_border_and_the_place() -> None:
    assert not grant(jurisdictions=["BE"]).permits(HOUSING, "BE", home="NL", abroad=True, now=T0)
    g = grant(jurisdictions=["NL", "BE"], cross_border=True)
    assert g.permits(HOUSING, "BE", home="NL", abroad=True, now=T0)
    assert not g.permits(HOUSING, "DE", home="NL", abroad=True, now=T0)


def test_a_grant_lapses_at_its_expiry() -> None:
    g = grant(expires_at=T0 + HOUR)
    assert g.is_active(T0) and g.permits(HOUSING, "NL", home="NL", abroad=False, now=T0)
    assert not g.is_active(T0 + HOUR)
    assert not has_consent_for([g], HOUSING, T0 + HOUR)


def test_a_partial_withdrawal_narrows_the_grant() -> None:
    g = grant(jurisdictions=["NL", "BE"], cross_border=True)
    narrowed = g.narrowed(withdrawal(S, consent_id=C1, categories=[HOUSING], jurisdictions=["BE"]))
    assert narrowed.permits(HOUSING, "NL", home="NL", abroad=False, now=T0)
    assert not narrowed.permits(HOUSING, "BE", home="NL", abroad=True, now=T0)
    assert narrowed.permits(HEALTH, "BE", home="NL", abroad=True, now=T0)
    no_crossing = g.narrowed(withdrawal(S, consent_id=C1, categories=[HEALTH], cross_border=True))
    assert not no_crossing.permits(HOUSING, "BE", home="NL", abroad=True, now=T0)
    assert not no_crossing.covers_category(HEALTH, T0)


def test_a_withdrawn_subdivision_also_withdraws_the_whole_country_provider() -> None:
    scope = WithdrawnScope(jurisdictions=("DE-BE",))
    assert scope.covers(HOUSING, "DE") and scope.covers(HOUSING, "DE-BE")
    assert not scope.covers(HOUSING, "DE-BY")


def test_the_permitting_grant_is_chosen_deterministically() -> None:
    a = ConsentGrant.from_event(consent(S, consent_id=C1))
    b = ConsentGrant.from_event(consent(S, consent_id=C2))
    first = min((a, b), key=lambda g: str(g.consent_id))
    for grants in ([a, b], [b, a]):
        assert permitting_grant(grants, HOUSING, "NL", home="NL", abroad=False, now=T0) == first


def test_the_summary_shows_scope_only() -> None:
    g1 = grant(categories=[HOUSING], expires_at=T0 + HOUR)
    g2 = ConsentGrant.from_event(consent(S, consent_id=C2, categories=[HEALTH], cross_border=True))
    terms = [ConsentTerms.of(g1), ConsentTerms.of(g2)]
    summary = consent_summary(terms, T0)
    assert summary.categories == (HEALTH, HOUSING)
    assert summary.cross_border and summary.next_expiry == T0 + HOUR
    assert consent_summary(terms[:1], T0 + HOUR).categories == ()


def test_the_terms_of_a_grant_leave_out_categories_withdrawn_everywhere() -> None:
    g = grant(categories=[HOUSING, HEALTH], jurisdictions=["NL", "BE"], cross_border=True)
    g = g.narrowed(withdrawal(S, consent_id=C1, categories=[HEALTH]))  # everywhere
    g = g.narrowed(withdrawal(S, consent_id=C1, categories=[HOUSING], jurisdictions=["BE"]))
    terms = ConsentTerms.of(g)
    assert terms.categories == (HOUSING,)  # withdrawn in BE only: still consented somewhere
    assert terms.cross_border and terms.expires_at is None
    assert terms.is_active(T0 + 1000 * HOUR)


# --------------------------------------------------------------------------- routing gate


def _ready(**grant_kwargs: object) -> Harness:
    h = Harness()
    h.all(
        provider(P1, categories=[HOUSING, HEALTH]),
        identified(S),
        consent(S, consent_id=C1, **grant_kwargs),  # type: ignore[arg-type]
    )
    return h


def test_no_offer_after_consent_expired() -> None:
    h = _ready(expires_at=T0 + HOUR)
    decision = h.survivor(request(S, R, at=T0 + 2 * HOUR))
    assert decision.events == ()
    assert h.referral(S, R).status is ReferralStatus.ON_HOLD
    assert h.referral(S, R).reason == "consent.missing"


def test_a_new_grant_releases_held_referrals_of_its_categories_only() -> None:
    h = _ready(categories=[HEALTH])
    h.all(request(S, R), request(S, R2, category=HEALTH))
    assert h.referral(S, R).status is ReferralStatus.ON_HOLD
    decision = h.survivor(consent(S, consent_id=C2, categories=[HOUSING]))
    assert [type(e) for e in decision.events] == [ReferralOffered]
    assert h.referral(S, R).status is ReferralStatus.OFFERED


def test_withdrawal_cancels_open_referrals_and_tells_their_providers() -> None:
    h = _ready()
    h.all(request(S, R), accepted(S, R, P1, 1), started(S, R, P1, 1))
    h.survivor(request(S, R2, category=HEALTH))
    decision = h.survivor(withdrawal(S, consent_id=C1))
    cancellations = [e for e in decision.events if isinstance(e, ReferralCancelled)]
    assert {(c.referral_id, c.provider_id, c.category) for c in cancellations} == {
        (R, P1, HOUSING),
        (R2, P1, HEALTH),
    }
    assert all(c.reason is CancelReason.CONSENT_WITHDRAWN for c in cancellations)
    assert all(c.cancelled_by is Actor.SYSTEM for c in cancellations)
    assert {r.status for r in h.cases[S].referrals.values()} == {ReferralStatus.CANCELLED}
    assert h.directory.providers[P1].reserved_total == 0


def test_routing_stops_for_the_withdrawn_scope() -> None:
    h = _ready()
    h.survivor(withdrawal(S, consent_id=C1))
    decision = h.survivor(request(S, R))
    assert decision.events == ()
    assert h.referral(S, R).reason == "consent.missing"


def test_a_partial_withdrawal_leaves_other_categories_alone() -> None:
    h = _ready()
    h.all(request(S, R), request(S, R2, category=HEALTH))
    decision = h.survivor(withdrawal(S, consent_id=C1, categories=[HEALTH]))
    (cancel,) = decision.events
    assert isinstance(cancel, ReferralCancelled) and cancel.referral_id == R2
    assert h.referral(S, R).status is ReferralStatus.OFFERED


def test_withdrawal_cancels_held_referrals_too_without_telling_anyone() -> None:
    h = Harness()
    h.all(identified(S), request(S, R))
    decision = h.survivor(withdrawal(S, consent_id=C1))
    assert decision.events == ()
    assert h.referral(S, R).status is ReferralStatus.CANCELLED


def test_a_referral_another_grant_still_covers_continues() -> None:
    h = _ready()
    h.survivor(consent(S, consent_id=C2, categories=[HOUSING]))
    h.survivor(request(S, R))
    decision = h.survivor(withdrawal(S, consent_id=C1))
    assert decision.events == ()
    assert h.referral(S, R).status is ReferralStatus.OFFERED


@pytest.mark.parametrize("unknown", ["provider_jurisdiction", "profile"])
def test_an_offer_whose_destination_cannot_be_checked_is_cancelled_on_withdrawal(
    unknown: str,
) -> None:
    """Fail closed: a stored offer without the provider's jurisdiction or the survivor's
    home (a state the core never writes) cannot be shown to be covered by the grants
    that are left, so a withdrawal touching it cancels it."""
    h = _ready()
    h.all(consent(S, consent_id=C2, categories=[HOUSING]), request(S, R))
    case = h.cases[S]
    if unknown == "profile":
        h.cases[S] = case.model_copy(update={"profile": None})
    else:
        blind = case.referrals[R].model_copy(update={"provider_jurisdiction": None})
        h.cases[S] = case.with_referral(blind)
    decision = h.survivor(withdrawal(S, consent_id=C1))  # C2 would still cover housing in NL
    (cancel,) = decision.events
    assert isinstance(cancel, ReferralCancelled)
    assert (cancel.referral_id, cancel.provider_id) == (R, P1)
    assert cancel.reason is CancelReason.CONSENT_WITHDRAWN
    assert h.referral(S, R).status is ReferralStatus.CANCELLED
    assert h.directory.providers[P1].reserved_total == 0


def test_withdrawing_cross_border_sharing_cancels_the_offer_abroad() -> None:
    h = Harness(policy=RoutingPolicy(cross_border_pairs=both_ways([("NL", "BE")])))
    h.all(
        provider(P2, jurisdictions=["BE"], cross_border=True),
        identified(S),
        consent(S, consent_id=C1, cross_border=True, jurisdictions=["NL", "BE"]),
        request(S, R),
    )
    assert h.referral(S, R).cross_border
    decision = h.survivor(withdrawal(S, consent_id=C1, categories=[HEALTH], cross_border=True))
    (cancel,) = decision.events
    assert isinstance(cancel, ReferralCancelled) and cancel.provider_id == P2


def test_a_withdrawn_grant_cannot_come_back_under_the_same_id() -> None:
    h = _ready()
    h.survivor(withdrawal(S, consent_id=C1))
    assert C1 not in h.cases[S].consents
    late = h.survivor(consent(S, consent_id=C1))
    assert late.rejection is not None
    assert late.rejection.code is RejectionCode.CONSENT_WITHDRAWN_EARLIER


def test_a_republished_grant_is_harmless_and_a_changed_one_refused() -> None:
    h = _ready()
    same = h.survivor(consent(S, consent_id=C1))
    assert same.rejection is None and same.effects == ()
    changed = h.survivor(consent(S, consent_id=C1, cross_border=True))
    assert changed.rejection is not None
    assert changed.rejection.code is RejectionCode.CONSENT_DUPLICATE


def test_withdrawing_an_unknown_grant_still_protects_the_survivor() -> None:
    h = Harness()
    h.all(provider(P1), identified(S), consent(S, consent_id=C1), request(S, R))
    decision = h.survivor(withdrawal(S, consent_id=C2))
    assert decision.rejection is None
    assert h.referral(S, R).status is ReferralStatus.OFFERED  # C1 still covers it
    assert C2 in h.cases[S].withdrawn_consents


@pytest.mark.parametrize("category", [HOUSING, HEALTH])
def test_no_offer_is_ever_made_without_consent_for_its_category(
    category: ServiceCategory,
) -> None:
    h = _ready(categories=[c for c in (HOUSING, HEALTH) if c is not category])
    decision = h.survivor(request(S, R, category=category))
    assert not any(isinstance(e, ReferralOffered | ReferralEscalated) for e in decision.events)
