"""The status of a case: the record the router publishes, and the view a reader answers.

The record is a function of the case alone (replays publish the same bytes);
the view is the record as of the instant it is read (consents expire).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from processors.case import CaseState
from processors.consent import ConsentGrant
from processors.lifecycle import ReferralStatus
from processors.status import (
    ReferralView,
    StatusRead,
    StatusRecord,
    StatusView,
    status_record,
    status_view,
)
from schemas.types import CaseOutcome, RiskLevel, ServiceCategory

from .domain_builders import (
    AGENCY,
    HOUSING,
    T0,
    Harness,
    closed,
    consent,
    declined,
    identified,
    provider,
    request,
    risk,
    uid,
    withdrawal,
)

HEALTH = ServiceCategory.HEALTH
S = uid("status-survivor")
EARLY, LATE, TIED = uid("status-early"), uid("status-late"), uid("status-tied")
P1, P2 = uid("status-p1"), uid("status-p2")
HOUR = timedelta(hours=1)
EXPIRY = T0 + timedelta(days=30)


def _case() -> CaseState:
    """An identified survivor at high risk with three referrals, requested out of order.

    ``LATE`` (housing) is requested first but happened later; it was declined by
    one provider and offered to the next. ``EARLY`` and ``TIED`` (health, which
    nobody offers) were requested at the same instant, before it, and are unroutable.
    """
    h = Harness()
    h.all(
        provider(P1, languages=("en",)),
        provider(P2, languages=("fr",), interpretation=True),
        identified(S),
        consent(S, categories=(HOUSING, HEALTH), expires_at=EXPIRY),
        risk(S, RiskLevel.HIGH),
        request(S, LATE, at=T0 + 2 * HOUR),
        request(S, EARLY, category=HEALTH, at=T0 + HOUR),
        request(S, TIED, category=HEALTH, at=T0 + HOUR),
        declined(S, LATE, P1, 1, at=T0 + 3 * HOUR),
    )
    return h.cases[S]


def view_of(case: CaseState, now: datetime) -> StatusView:
    """What a reader answers at ``now`` for the record the router published of ``case``."""
    return status_view(status_record(case), now)


def test_the_view_lists_referrals_in_request_order_with_the_fields_of_the_case() -> None:
    case = _case()
    view = view_of(case, T0 + 4 * HOUR)

    tied_first = sorted([EARLY, TIED], key=str)  # same instant: by id, stable across replays
    assert [r.referral_id for r in view.referrals] == [*tied_first, LATE]
    for shown in view.referrals:
        stored = case.referrals[shown.referral_id]
        assert shown == ReferralView(
            referral_id=stored.referral_id,
            category=stored.category,
            urgency=stored.urgency,
            status=stored.status,
            provider_id=stored.provider_id,
            attempts=stored.attempt,
            providers_tried=len(stored.tried),
            escalation_level=stored.escalation_level,
            deadline=stored.deadline,
            reason=stored.reason,
            updated_at=stored.updated_at,
        )
    housing = view.referrals[-1]
    assert (housing.status, housing.provider_id) == (ReferralStatus.OFFERED, P2)
    assert (housing.attempts, housing.providers_tried) == (2, 2)
    assert housing.deadline is not None and housing.reason is None
    assert {r.status for r in view.referrals[:2]} == {ReferralStatus.UNROUTABLE}

    assert view.survivor_id == S and view.identified
    assert view.risk_level is RiskLevel.HIGH
    assert view.closed is None
    assert view.last_update == case.updated_at == T0 + 3 * HOUR


def test_the_escalation_level_is_the_highest_of_the_case_and_its_referrals() -> None:
    case = _case()
    assert sorted(r.escalation_level for r in case.referrals.values()) == [0, 2, 2]
    assert view_of(case, T0).escalation_level == 2
    quiet_case = case.model_copy(update={"escalation_level": 0})
    assert view_of(quiet_case, T0).escalation_level == 2  # from the referrals
    loud_case = case.model_copy(update={"escalation_level": 3})
    assert view_of(loud_case, T0).escalation_level == 3  # from the case


def test_consent_is_summarised_as_of_the_reading_not_the_last_event() -> None:
    case = _case()
    before = view_of(case, EXPIRY - HOUR).consent
    assert before.categories == (HEALTH, HOUSING)
    assert (before.cross_border, before.next_expiry) == (False, EXPIRY)
    after = view_of(case, EXPIRY + HOUR).consent  # no event since: it simply expired
    assert (after.categories, after.next_expiry) == ((), None)


def test_an_unidentified_survivor_and_a_closed_case() -> None:
    h = Harness()
    h.survivor(request(S, LATE))
    waiting = view_of(h.cases[S], T0)
    assert not waiting.identified
    (only,) = waiting.referrals
    assert (only.status, only.reason) == (ReferralStatus.ON_HOLD, "survivor.unidentified")
    assert (only.provider_id, only.attempts, only.deadline) == (None, 0, None)
    h.survivor(closed(S, at=T0 + HOUR))
    done = view_of(h.cases[S], T0 + HOUR)
    assert done.closed is CaseOutcome.SUPPORT_COMPLETED
    assert done.last_update == T0 + HOUR


def test_the_dict_form_is_plain_json_and_reads_back_as_the_same_view() -> None:
    view = view_of(_case(), T0 + 4 * HOUR)
    data = view.to_dict()
    assert json.loads(json.dumps(data)) == data  # strings, numbers, lists: nothing else
    assert set(data) == set(StatusView.model_fields)
    assert data["survivor_id"] == str(S)
    assert data["risk_level"] == "HIGH"
    assert data["consent"]["next_expiry"] == EXPIRY.isoformat().replace("+00:00", "Z")
    assert [r["status"] for r in data["referrals"]] == ["unroutable", "unroutable", "offered"]
    assert all(set(r) == set(ReferralView.model_fields) for r in data["referrals"])
    assert StatusView.model_validate(data) == view


def test_the_record_is_the_case_alone_and_reads_back_as_the_same_record() -> None:
    case = _case()
    record = status_record(case)
    data = record.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == set(StatusRecord.model_fields)
    assert "consent" not in data  # the summary depends on the instant: the reader's to make
    assert data["consents"] == [
        {"categories": ["HOUSING", "HEALTH"], "cross_border": False, "expires_at": _z(EXPIRY)}
    ]
    assert data["last_update"] == _z(T0 + 3 * HOUR)  # the last event's time
    assert StatusRecord.model_validate(data) == record
    assert status_record(CaseState.from_dict(case.to_dict())) == record  # same case, same record


def test_consents_are_published_in_a_fixed_order_whatever_order_they_came_in() -> None:
    def granted(*ids: str) -> CaseState:
        h = Harness()
        h.all(identified(S), *(consent(S, consent_id=uid(i), categories=[HEALTH]) for i in ids))
        return h.cases[S]

    assert status_record(granted("c1", "c2")) == status_record(granted("c2", "c1"))


_instants = st.integers(min_value=-48, max_value=48).map(lambda h: T0 + h * HOUR)
_grants = st.lists(
    st.tuples(
        st.lists(st.sampled_from([HOUSING, HEALTH]), unique=True),
        st.booleans(),
        st.none() | _instants,
        st.lists(st.sampled_from([HOUSING, HEALTH]), unique=True, max_size=1),
        st.booleans(),
    ),
    max_size=4,
)


@given(grants=_grants, now=_instants)
def test_the_summary_read_from_the_record_is_the_one_of_the_grants_at_that_instant(
    grants: list[tuple[list[ServiceCategory], bool, datetime | None, list[ServiceCategory], bool]],
    now: datetime,
) -> None:
    h = Harness()
    h.survivor(identified(S))
    for index, (categories, cross, expires, narrowed, whole) in enumerate(grants):
        cid = uid(f"status-grant-{index}")
        h.survivor(
            consent(
                S, consent_id=cid, categories=categories, cross_border=cross, expires_at=expires
            )
        )
        if narrowed:
            h.survivor(withdrawal(S, consent_id=cid, categories=narrowed))
        if whole:
            h.survivor(withdrawal(S, consent_id=cid))
    live: list[ConsentGrant] = list(h.cases[S].consents.values())

    summary = view_of(h.cases[S], now).consent

    active = [g for g in live if g.is_active(now)]  # the oracle: the grants themselves
    assert set(summary.categories) == {
        c for g in active for c in ServiceCategory if g.covers_category(c, now)
    }
    assert summary.cross_border == any(g.cross_border_allowed for g in active)
    expiries = [g.expires_at for g in active if g.expires_at is not None]
    assert summary.next_expiry == (min(expiries) if expiries else None)


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_a_status_read_is_audited_as_plain_json_without_case_data() -> None:
    read = StatusRead(
        survivor_id=S,
        at=T0,
        principal="ops-desk",
        role="operator",
        key_id="sp_operator_AbCdEfGh",
        status=200,
    )
    data = read.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "kind": "status.read",
        "survivor_id": str(S),
        "at": "2025-03-01T09:00:00Z",
        "principal": "ops-desk",
        "role": "operator",
        "key_id": "sp_operator_AbCdEfGh",
        "status": 200,
        "refusal": None,
    }
    assert StatusRead.model_validate(data) == read


def test_the_status_record_names_the_agency_the_survivor_belongs_to() -> None:
    h = Harness()
    h.all(identified(S))
    assert status_record(h.cases[S]).agency_id == AGENCY
    h.all(request(uid("unidentified"), uid("r-unidentified")))  # held, owned all the same
    assert status_record(h.cases[uid("unidentified")]).agency_id == AGENCY
    assert status_record(CaseState.new(uid("nobody"))).agency_id is None


def test_the_status_record_names_the_jurisdiction_the_survivor_was_identified_in() -> None:
    """For the console's counts per jurisdiction; none before identification or in old records."""
    h = Harness()
    h.all(identified(S, jurisdiction="BE"))
    assert status_record(h.cases[S]).jurisdiction == "BE"
    h.all(request(uid("not-yet"), uid("r-not-yet")))
    assert status_record(h.cases[uid("not-yet")]).jurisdiction is None
    older = status_record(h.cases[S]).to_dict()
    del older["jurisdiction"]
    assert StatusRecord.model_validate(older).jurisdiction is None
