"""Who may send what about whom: the sender from the source, ownership, provider answers."""

from __future__ import annotations

import pytest

from processors.case import CaseState
from processors.core import EventMeta, decide
from processors.effects import AuditAction, RejectionCode
from processors.senders import (
    Sender,
    SenderKind,
    directory_refusal,
    owner_of,
    refusal,
    sender_of,
)
from schemas.models import ProviderCapacity, ProviderUpdated, SurvivorEvent
from schemas.types import AgeGroup, RiskLevel, ServiceCategory, UndeliveredEvent

from .domain_builders import (
    AGENCY,
    T0,
    Harness,
    accepted,
    cancelled,
    closed,
    consent,
    identified,
    provider,
    request,
    risk,
    uid,
    undelivered,
)

S, R, P = uid("sender-survivor"), uid("sender-referral"), uid("sender-provider")
OTHER = "agency:be-ngo"


@pytest.mark.parametrize(
    ("source", "sender"),
    [
        ("/agencies/agency:nl-police", Sender(SenderKind.AGENCY, "agency:nl-police")),
        ("/agencies/nl/police", Sender(SenderKind.AGENCY, "nl/police")),  # ids may hold "/"
        (f"/providers/{P}", Sender(SenderKind.PROVIDER, str(P))),
        ("/safepassage/webhooks", Sender(SenderKind.PLATFORM, "webhooks")),
        ("/directory-admins/dir-admin", Sender(SenderKind.DIRECTORY, "dir-admin")),
        ("/agencies/", Sender(SenderKind.UNKNOWN)),
        ("/test/agency", Sender(SenderKind.UNKNOWN)),
        ("urn:agencies:x", Sender(SenderKind.UNKNOWN)),
        ("agencies/x", Sender(SenderKind.UNKNOWN)),
    ],
)
def test_the_sender_is_read_from_the_source(source: str, sender: Sender) -> None:
    assert sender_of(source) == sender


def _by(event: SurvivorEvent, agency: str) -> SurvivorEvent:
    """The same event with another agency's id in its data."""
    return event.model_copy(update={"agency_id": agency})


def _ready() -> Harness:
    h = Harness()
    h.all(provider(P, capacity=2), identified(S), consent(S))
    return h


def _as(h: Harness, event: SurvivorEvent, source: str, event_id: str = "x-1") -> object:
    return h.survivor(event, EventMeta(source=source, id=event_id))


def test_the_first_agency_to_publish_owns_the_survivor() -> None:
    h = _ready()
    assert h.cases[S].owner == AGENCY
    held = Harness()
    held.all(request(uid("held"), uid("held-r")))  # a request held before identification
    assert held.cases[uid("held")].owner == AGENCY


@pytest.mark.parametrize(
    "event",
    [
        _by(identified(S, age=AgeGroup.ADULT), OTHER),
        _by(consent(S), OTHER),
        _by(risk(S, RiskLevel.HIGH), OTHER),
        _by(request(S, uid("theirs")), OTHER),
        _by(closed(S), OTHER),
    ],
    ids=lambda e: e.event_type,
)
def test_another_agency_cannot_change_the_survivor_and_is_dead_lettered_and_audited(
    event: SurvivorEvent,
) -> None:
    h = _ready()
    before = h.cases[S]

    decision = _as(h, event, f"/agencies/{OTHER}")

    assert decision.rejection is not None  # type: ignore[attr-defined]
    assert decision.rejection.code is RejectionCode.SURVIVOR_NOT_OWNED  # type: ignore[attr-defined]
    assert [a.action for a in decision.audits] == [AuditAction.REJECTED]  # type: ignore[attr-defined]
    assert not decision.changed  # type: ignore[attr-defined]
    assert h.cases[S] == before


def test_a_cancellation_which_names_no_agency_is_judged_by_its_source() -> None:
    h = _ready()
    h.survivor(request(S, R))
    theirs = _as(h, cancelled(S, R), f"/agencies/{OTHER}")
    assert theirs.rejection.code is RejectionCode.SURVIVOR_NOT_OWNED  # type: ignore[attr-defined]
    own = _as(h, cancelled(S, R), f"/agencies/{AGENCY}", "x-2")
    assert own.rejection is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("event", "source"),
    [
        (risk(S, RiskLevel.HIGH), f"/agencies/{OTHER}"),  # data names another agency
        (risk(S, RiskLevel.HIGH), f"/providers/{P}"),
        (risk(S, RiskLevel.HIGH), "/safepassage/webhooks"),
        (risk(S, RiskLevel.HIGH), "/test/agency"),
    ],
)
def test_agency_events_come_only_from_the_agency_their_data_names(
    event: SurvivorEvent, source: str
) -> None:
    h = _ready()
    decision = _as(h, event, source)
    assert decision.rejection.code is RejectionCode.SENDER_NOT_ALLOWED  # type: ignore[attr-defined]


def test_a_provider_answers_only_for_itself_and_the_offer_stands() -> None:
    h = _ready()
    h.survivor(request(S, R))
    other = uid("other-provider")
    forged = _as(h, accepted(S, R, P, 1), f"/providers/{other}")
    assert forged.rejection.code is RejectionCode.SENDER_NOT_ALLOWED  # type: ignore[attr-defined]
    assert h.referral(S, R).status.value == "offered"
    for source in (f"/agencies/{AGENCY}", "/safepassage/router"):
        refused = _as(h, accepted(S, R, P, 1), source, f"as-{source}")
        assert refused.rejection.code is RejectionCode.SENDER_NOT_ALLOWED  # type: ignore[attr-defined]
    real = _as(h, accepted(S, R, P, 1), f"/providers/{P}", "real")
    assert real.rejection is None  # type: ignore[attr-defined]
    assert h.referral(S, R).status.value == "accepted"


def test_delivery_reports_come_only_from_the_platform() -> None:
    h = _ready()
    h.survivor(request(S, R))
    report = undelivered(S, R, P, 1, what=UndeliveredEvent.REFERRAL_OFFERED)
    forged = _as(h, report, f"/providers/{P}")
    assert forged.rejection.code is RejectionCode.SENDER_NOT_ALLOWED  # type: ignore[attr-defined]
    real = _as(h, report, "/safepassage/webhooks", "real")
    assert real.rejection is None  # type: ignore[attr-defined]


def test_a_state_from_before_owners_belongs_to_the_identifying_agency() -> None:
    h = _ready()
    legacy = h.cases[S].model_copy(update={"owner": None})
    assert owner_of(legacy) == AGENCY
    theirs = refusal(
        legacy, _by(risk(S, RiskLevel.HIGH), OTHER), Sender(SenderKind.AGENCY, OTHER), T0
    )
    assert theirs is not None and theirs[0] is RejectionCode.SURVIVOR_NOT_OWNED
    assert owner_of(CaseState.new(S)) is None
    decision = decide(
        legacy, h.directory, risk(S, RiskLevel.LOW), EventMeta(f"/agencies/{AGENCY}", "l"), now=T0
    )
    assert decision.state.owner == AGENCY  # recorded on the next accepted event


# --------------------------------------------------------------------------- directory


def _capacity(pid: object) -> ProviderCapacity:
    return ProviderCapacity(
        provider_id=P if pid is None else pid,
        occurred_at=T0,
        category=ServiceCategory.HOUSING,
        total=4,
        available=1,
    )


def _update() -> ProviderUpdated:
    return ProviderUpdated(**provider(P).model_dump())


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("/directory-admins/dir-admin", True),  # the intake, for a directory administrator
        ("/safepassage/admin-seed", True),  # the platform
        (f"/providers/{P}", False),  # a provider never describes itself
        ("/agencies/agency:nl-police", False),
        ("/operators/desk", False),
        ("/test", False),
    ],
)
def test_only_administrators_and_the_platform_register_or_update_providers(
    source: str, allowed: bool
) -> None:
    for event in (provider(P), _update()):
        found = directory_refusal(event, sender_of(source))
        assert (found is None) is allowed
        if found is not None:
            assert found[0] is RejectionCode.SENDER_NOT_ALLOWED


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        (f"/providers/{P}", True),  # its own capacity
        (f"/providers/{uid('another-provider')}", False),
        ("/directory-admins/dir-admin", True),
        ("/safepassage/admin-seed", True),
        ("/agencies/agency:nl-police", False),
    ],
)
def test_a_provider_reports_only_its_own_capacity(source: str, allowed: bool) -> None:
    found = directory_refusal(_capacity(None), sender_of(source))
    assert (found is None) is allowed
    if found is not None:
        assert "own capacity" in found[1]
