"""The live demo's script, pure: who is identified, by whom, what they need, how providers answer.

``safepassage run --demo`` streams survivors through the intake (the
streamer) and answers their offers as the demo directory's providers (the
provider simulator). Everything either of them decides is here, as data
and pure functions, so that a unit test can check the design against the
router's own matching engine: each planned referral names the provider the
router should offer it to first on the fresh demo directory
(:attr:`PlannedReferral.first`), or None when nobody fits *by design*
(an unroutable referral, which escalates at once).

**Survivors.** :data:`ARCHETYPES` is a cycle of fictional cases, one per
survivor, chosen so that every category reaches a provider within the first
three survivors and the ladder's three rungs are reached within the first
two (:func:`survivor` gives survivor ``n`` of a run). Ids are UUIDv5 of the
run's id, so one run's plan is reproducible and two runs never collide.
The personal data is made up and says so; it travels sealed.

**Providers.** :data:`BEHAVIOURS` gives every demo directory provider one
:class:`Behaviour` (by its slug), and :func:`answers` turns a behaviour into
the provider's timed answers to one offer. The delays are wall seconds,
against the demo SLA policy (``infra/demo/sla-policy.yaml``: 720 times
faster, an emergency offer due after 5 s, a priority one after 20 s, a
routine one after 40 s), so a *slow* provider is in time for routine
offers and late for emergencies, and a *silent* one misses every deadline.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Final

from connectors.directory.demo import PROVIDERS, DemoProvider
from schemas.types import (
    AgeGroup,
    DeclineReason,
    FailureReason,
    Gender,
    ImmediateNeed,
    ReferralOutcome,
    RiskLevel,
    ServiceCategory,
    Urgency,
)

__all__ = [
    "AGENCIES",
    "ARCHETYPES",
    "BEHAVIOURS",
    "CATEGORIES",
    "CROSS_BORDER_PAIRS",
    "DEMO_SLA_POLICY",
    "DEMO_TICK_INTERVAL_S",
    "Answer",
    "AnswerKind",
    "Archetype",
    "Behaviour",
    "PlannedReferral",
    "PlannedSurvivor",
    "answers",
    "behaviour_of",
    "expected_levels",
    "provider_by_id",
    "survivor",
]

H, M, L, F = (
    ServiceCategory.HOUSING,
    ServiceCategory.HEALTH,
    ServiceCategory.LEGAL_AID,
    ServiceCategory.FINANCIAL_SUPPORT,
)
CATEGORIES: Final = (H, M, L, F)
"""The four categories the demo must reach."""

# ------------------------------------------------------------------------- providers


class Behaviour(StrEnum):
    """How a simulated provider answers its offers."""

    PROMPT = "prompt"
    """Accepts at once, starts two seconds later, completes five seconds after that."""
    SLOW = "slow"
    """Accepts after eight seconds: in time for routine and priority offers, late for
    emergencies (the ladder has re-offered by then; its late answer is refused)."""
    DECLINER = "decliner"
    """Declines within a second, with its reason (:data:`DECLINE_REASONS`)."""
    SILENT = "silent"
    """Receives the webhook, never answers: every deadline is missed."""
    FAILING = "failing"
    """Accepts and starts, then loses contact with the survivor (``referral.failed``)."""


class AnswerKind(StrEnum):
    """One answer of a provider to an offer (the provider SDK's methods)."""

    ACCEPT = "accept"
    DECLINE = "decline"
    START = "start"
    COMPLETE = "complete"
    FAIL = "fail"


@dataclass(frozen=True)
class Answer:
    """An answer and how long after the previous one (or the offer) it is given."""

    after_s: float
    kind: AnswerKind
    reason: DeclineReason | FailureReason | ReferralOutcome | None = None


BEHAVIOURS: Final[Mapping[str, Behaviour]] = MappingProxyType(
    {
        "nl-lantern": Behaviour.PROMPT,
        "nl-tidewater": Behaviour.PROMPT,
        "nl-kestrel": Behaviour.PROMPT,
        "nl-saffron": Behaviour.DECLINER,
        "nl-willow-kids": Behaviour.PROMPT,
        "nl-harbour-men": Behaviour.SLOW,
        "be-morning": Behaviour.PROMPT,
        "be-ferrule": Behaviour.SLOW,
        "be-quill": Behaviour.SILENT,
        "be-copper": Behaviour.PROMPT,
        "be-sparrow-kids": Behaviour.SILENT,
        "de-linden": Behaviour.PROMPT,
        "de-ember": Behaviour.PROMPT,
        "de-gable": Behaviour.DECLINER,
        "de-thimble": Behaviour.PROMPT,
        "de-acorn-kids": Behaviour.PROMPT,
        "de-oak-men": Behaviour.FAILING,
        "ro-lumina": Behaviour.PROMPT,
        "ro-aster": Behaviour.SLOW,
        "ro-scribe": Behaviour.PROMPT,
        "ro-hearth-kids": Behaviour.PROMPT,
        "ro-meridian": Behaviour.DECLINER,
        "md-plop": Behaviour.DECLINER,
        "md-justa": Behaviour.PROMPT,
        "md-grain": Behaviour.PROMPT,
        "xb-meuse-shelter": Behaviour.PROMPT,
        "xb-meuse-legal": Behaviour.PROMPT,
        "xb-dreilaender-health": Behaviour.PROMPT,
        "xb-dreilaender-fund": Behaviour.PROMPT,
        "xb-prut-shelter": Behaviour.PROMPT,
        "xb-prut-legal": Behaviour.SILENT,
        "xb-prut-kids": Behaviour.PROMPT,
        "xb-oder-clinic": Behaviour.SILENT,
    }
)
"""Every demo directory provider's behaviour, by slug (a unit test checks none is missing)."""

DECLINE_REASONS: Final[Mapping[str, DeclineReason]] = MappingProxyType(
    {
        "nl-saffron": DeclineReason.NO_CAPACITY,
        "de-gable": DeclineReason.CONFLICT_OF_INTEREST,
        "ro-meridian": DeclineReason.OUT_OF_AREA,
        "md-plop": DeclineReason.SAFETY_CONCERN,
    }
)
"""Why each decliner declines."""

_BY_ID: Final[Mapping[uuid.UUID, DemoProvider]] = MappingProxyType(
    {provider.provider_id: provider for provider in PROVIDERS}
)


def provider_by_id(provider_id: uuid.UUID) -> DemoProvider | None:
    """The demo directory provider with this id, if it is one."""
    return _BY_ID.get(provider_id)


def behaviour_of(provider_id: uuid.UUID) -> Behaviour:
    """The behaviour of a provider; one outside the demo directory answers promptly."""
    provider = provider_by_id(provider_id)
    return BEHAVIOURS.get(provider.slug, Behaviour.PROMPT) if provider else Behaviour.PROMPT


def answers(provider_id: uuid.UUID) -> tuple[Answer, ...]:
    """The timed answers this provider gives to one offer, in order (none: silent)."""
    behaviour = behaviour_of(provider_id)
    provider = provider_by_id(provider_id)
    if behaviour is Behaviour.PROMPT:
        return (
            Answer(0.3, AnswerKind.ACCEPT),
            Answer(2.0, AnswerKind.START),
            Answer(5.0, AnswerKind.COMPLETE, ReferralOutcome.SERVICE_PROVIDED),
        )
    if behaviour is Behaviour.SLOW:
        return (
            Answer(8.0, AnswerKind.ACCEPT),
            Answer(4.0, AnswerKind.START),
            Answer(8.0, AnswerKind.COMPLETE, ReferralOutcome.PARTIALLY_PROVIDED),
        )
    if behaviour is Behaviour.DECLINER:
        reason = DECLINE_REASONS.get(provider.slug if provider else "", DeclineReason.OTHER)
        return (Answer(0.8, AnswerKind.DECLINE, reason),)
    if behaviour is Behaviour.FAILING:
        return (
            Answer(0.5, AnswerKind.ACCEPT),
            Answer(2.0, AnswerKind.START),
            Answer(4.0, AnswerKind.FAIL, FailureReason.LOST_CONTACT),
        )
    return ()


# ------------------------------------------------------------------------- survivors

AGENCIES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "NL": "agency:demo",
        "BE": "agency:demo-be",
        "DE": "agency:demo-de",
        "RO": "agency:demo-ro",
        "MD": "agency:demo-md",
    }
)
"""The demo agency of each country (their keys: ``DEMO_PRINCIPALS``)."""


@dataclass(frozen=True)
class PlannedReferral:
    """One referral an archetype asks for, and the provider it is designed to reach first."""

    category: ServiceCategory
    urgency: Urgency
    jurisdiction: str
    first: str | None
    """Slug of the provider the router offers it to first on the fresh demo directory;
    None: nobody fits, by design (unroutable)."""
    languages: tuple[str, ...] = ()
    gender_specific: bool = False
    child_specialised: bool = False
    accessibility: bool = False


@dataclass(frozen=True)
class Archetype:
    """A fictional case: who is identified where, consents to what, needs which services."""

    name: str
    story: str
    """What the case shows, for the docs and the streamer's log (no personal data)."""
    country: str
    """Whose demo agency identifies the survivor (a key of :data:`AGENCIES`)."""
    jurisdiction: str
    age_group: AgeGroup
    gender: Gender
    languages: tuple[str, ...]
    risk: RiskLevel
    needs: tuple[ImmediateNeed, ...]
    referrals: tuple[PlannedReferral, ...]
    cross_border: bool = False
    consent_jurisdictions: tuple[str, ...] = ()
    """Where data may go; empty: the home jurisdiction only."""

    @property
    def agency_id(self) -> str:
        return AGENCIES[self.country]

    @property
    def consent_categories(self) -> tuple[ServiceCategory, ...]:
        """The categories asked for, in :data:`CATEGORIES` order: consent covers each."""
        asked = {referral.category for referral in self.referrals}
        return tuple(category for category in CATEGORIES if category in asked)


def _r(
    category: ServiceCategory,
    urgency: Urgency,
    jurisdiction: str,
    first: str | None,
    *languages: str,
    gender: bool = False,
    child: bool = False,
    accessible: bool = False,
) -> PlannedReferral:
    return PlannedReferral(
        category, urgency, jurisdiction, first, languages, gender, child, accessible
    )


E, P, R = Urgency.EMERGENCY, Urgency.PRIORITY, Urgency.ROUTINE
ADULT, MINOR, UNKNOWN_AGE = AgeGroup.ADULT, AgeGroup.MINOR, AgeGroup.UNKNOWN
W, MAN = Gender.FEMALE, Gender.MALE

ARCHETYPES: Final[tuple[Archetype, ...]] = (
    Archetype(
        "be-across-the-meuse",
        "a woman in Hasselt: the Meuse refuge on the Belgian side, a clinic on the Dutch side "
        "(cross-border)",
        "BE",
        "BE-VLI",
        ADULT,
        W,
        ("nl", "fr"),
        RiskLevel.MEDIUM,
        (),
        (
            _r(H, R, "BE-VLI", "xb-meuse-shelter", gender=True),
            _r(M, R, "NL-LI", "xb-dreilaender-health"),
        ),
        cross_border=True,
        consent_jurisdictions=("BE", "NL"),
    ),
    Archetype(
        "be-silent-clinic",
        "a man in Liège needs a clinic at once; the only one never answers: re-offer (1) and "
        "coordinator (2) together, then nobody is left: operator (3); slow legal aid in time",
        "BE",
        "BE-WLG",
        ADULT,
        MAN,
        ("fr",),
        RiskLevel.MEDIUM,
        (ImmediateNeed.MEDICAL,),
        (_r(M, E, "BE-WLG", "be-quill"), _r(L, R, "BE-WLG", "be-ferrule")),
    ),
    Archetype(
        "nl-declined-fund",
        "a woman in Amsterdam: the grant fund declines (no capacity), the fund in Limburg "
        "accepts; legal aid accepted",
        "NL",
        "NL-NH",
        ADULT,
        W,
        ("en",),
        RiskLevel.MEDIUM,
        (),
        (_r(F, R, "NL", "nl-saffron"), _r(L, R, "NL-NH", "nl-kestrel")),
        consent_jurisdictions=("NL",),
    ),
    Archetype(
        "nl-shelter-and-counsel",
        "a woman in Amsterdam: a women's safe house and residence-rights counsel, both accepted",
        "NL",
        "NL-NH",
        ADULT,
        W,
        ("ro", "en"),
        RiskLevel.HIGH,
        (ImmediateNeed.EMERGENCY_SHELTER,),
        (_r(H, P, "NL-NH", "nl-lantern", gender=True), _r(L, R, "NL-NH", "nl-kestrel")),
    ),
    Archetype(
        "md-child-across-the-prut",
        "a boy in Chișinău: no children's home in Moldova, the one across the Prut in Iași "
        "accepts (cross-border); child legal aid exists nowhere: unroutable, operator (3)",
        "MD",
        "MD-CU",
        MINOR,
        MAN,
        ("ro", "ru"),
        RiskLevel.HIGH,
        (ImmediateNeed.CHILD_PROTECTION,),
        (_r(H, E, "RO-IS", "xb-prut-kids", child=True), _r(L, R, "MD-CU", None, child=True)),
        cross_border=True,
        consent_jurisdictions=("MD", "RO"),
    ),
    Archetype(
        "be-silent-youth-shelter",
        "a girl in Liège needs shelter at once; the youth shelter never answers: re-offer (1) "
        "and operator (3) together (a child in an emergency)",
        "BE",
        "BE-WLG",
        MINOR,
        W,
        ("fr",),
        RiskLevel.HIGH,
        (ImmediateNeed.EMERGENCY_SHELTER,),
        (_r(H, E, "BE-WLG", "be-sparrow-kids", child=True),),
    ),
    Archetype(
        "de-hostel-fails",
        "a man in Munich: the men's hostel accepts, then loses contact (failed); the only law "
        "clinic declines (conflict of interest): unroutable, coordinator (2)",
        "DE",
        "DE-BY",
        ADULT,
        MAN,
        ("de", "pl"),
        RiskLevel.MEDIUM,
        (),
        (_r(H, P, "DE-BY", "de-oak-men", gender=True), _r(L, R, "DE-BY", "de-gable")),
    ),
    Archetype(
        "de-silent-border-clinic",
        "a woman in Berlin speaking Ukrainian: the border clinic is best and never answers; "
        "after the deadline the ladder re-offers (1) and the second clinic (and fund) accepts",
        "DE",
        "DE-BE",
        ADULT,
        W,
        ("uk", "en"),
        RiskLevel.MEDIUM,
        (),
        (_r(M, P, "DE-BE", "xb-oder-clinic"), _r(F, R, "DE-BE", "xb-oder-clinic")),
    ),
    Archetype(
        "ro-critical-risk",
        "a woman in Bucharest at critical risk: emergency shelter, slow health care, legal aid",
        "RO",
        "RO-B",
        ADULT,
        W,
        ("ro",),
        RiskLevel.CRITICAL,
        (ImmediateNeed.EMERGENCY_SHELTER,),
        (
            _r(H, E, "RO-B", "ro-lumina", gender=True),
            _r(M, R, "RO-B", "ro-aster"),
            _r(L, R, "RO-B", "ro-scribe"),
        ),
    ),
    Archetype(
        "md-shelter-across-the-prut",
        "a woman in Ungheni: shelter on the Romanian bank (cross-border); the border legal aid "
        "never answers: re-offer (1), nobody left: coordinator (2)",
        "MD",
        "MD-UN",
        ADULT,
        W,
        ("ro", "ru"),
        RiskLevel.HIGH,
        (),
        (_r(H, P, "RO-IS", "xb-prut-shelter"), _r(L, R, "MD-UN", "xb-prut-legal")),
        cross_border=True,
        consent_jurisdictions=("MD-UN", "RO-IS"),
    ),
    Archetype(
        "nl-no-common-language",
        "a woman in Rotterdam speaking Tigrinya only: no fund speaks it or interprets, "
        "unroutable (2); the clinic interprets and accepts",
        "NL",
        "NL-ZH",
        ADULT,
        W,
        ("ti",),
        RiskLevel.MEDIUM,
        (ImmediateNeed.INTERPRETER,),
        (_r(F, R, "NL-ZH", None), _r(M, P, "NL-ZH", "nl-tidewater")),
    ),
    Archetype(
        "nl-mens-shelter-full",
        "a man in Rotterdam: the men's shelter has no place left, unroutable (2); legal aid "
        "accepts",
        "NL",
        "NL-ZH",
        ADULT,
        MAN,
        ("pl", "en"),
        RiskLevel.LOW,
        (),
        (_r(H, R, "NL-ZH", None, gender=True), _r(L, R, "NL-ZH", "nl-kestrel")),
    ),
    Archetype(
        "de-child-of-unknown-age",
        "a young person of unknown age in Munich (treated as a child): the children's home "
        "gives shelter and care",
        "DE",
        "DE-BY",
        UNKNOWN_AGE,
        Gender.UNDISCLOSED,
        ("ar", "de"),
        RiskLevel.HIGH,
        (),
        (_r(H, P, "DE-BY", "de-acorn-kids", child=True), _r(M, R, "DE-BY", "de-acorn-kids")),
    ),
    Archetype(
        "ro-declined-grant",
        "a woman in Timișoara speaking Hungarian: the micro-grant fund declines (out of area), "
        "nobody else is there: coordinator (2); the slow clinic accepts in time",
        "RO",
        "RO-TM",
        ADULT,
        W,
        ("hu", "ro"),
        RiskLevel.MEDIUM,
        (),
        (_r(F, R, "RO-TM", "ro-meridian"), _r(M, R, "RO-TM", "ro-aster")),
    ),
    Archetype(
        "md-declined-shelter",
        "a woman in Chișinău: the shelter declines (a safety concern), nobody else: "
        "coordinator (2); legal aid and a grant accepted",
        "MD",
        "MD-CU",
        ADULT,
        W,
        ("ru",),
        RiskLevel.HIGH,
        (),
        (
            _r(H, P, "MD-CU", "md-plop"),
            _r(L, R, "MD-CU", "md-justa"),
            _r(F, R, "MD-CU", "md-grain"),
        ),
    ),
)
"""The cycle of cases, in streaming order (see the module docstring for why this order)."""


def expected_levels(archetype: Archetype, referral: PlannedReferral) -> frozenset[int]:
    """The rungs this referral is designed to reach if its first provider behaves as planned.

    A silent first provider: the re-offer (1) and the referral's first rung;
    nobody fitting (or a decliner with nobody after it, which the test of
    the plan shows): rung 2, or 3 for a child, an emergency or critical risk.
    """
    factors = (
        referral.urgency is Urgency.EMERGENCY,
        archetype.risk is RiskLevel.CRITICAL,
        archetype.age_group is not AgeGroup.ADULT or referral.child_specialised,
    )
    first_rung = min(3, 1 + sum(factors))
    if referral.first is None:
        return frozenset({3 if any(factors) else 2})
    if BEHAVIOURS.get(referral.first) is Behaviour.SILENT:
        return frozenset({1, first_rung})
    return frozenset()


@dataclass(frozen=True)
class PlannedSurvivor:
    """Survivor ``number`` of a run: the archetype and every id the streamer sends."""

    number: int
    archetype: Archetype
    survivor_id: uuid.UUID
    consent_id: uuid.UUID
    referral_ids: tuple[uuid.UUID, ...]
    personal_data: Mapping[str, str]
    """Made up, and saying so; sealed by the SDK before it leaves the streamer."""

    @property
    def referrals(self) -> tuple[tuple[uuid.UUID, PlannedReferral], ...]:
        return tuple(zip(self.referral_ids, self.archetype.referrals, strict=True))


def survivor(run: uuid.UUID, number: int) -> PlannedSurvivor:
    """Survivor ``number`` (0, 1, ...) of the run ``run``; the same for the same arguments."""
    if number < 0:
        raise ValueError("survivor numbers start at 0")
    archetype = ARCHETYPES[number % len(ARCHETYPES)]
    sid = uuid.uuid5(run, f"survivor/{number}")
    return PlannedSurvivor(
        number=number,
        archetype=archetype,
        survivor_id=sid,
        consent_id=uuid.uuid5(sid, "consent"),
        referral_ids=tuple(
            uuid.uuid5(sid, f"referral/{index}") for index in range(len(archetype.referrals))
        ),
        personal_data={
            "name": f"Fictional Person {number:04d} (demo, not a real person)",
            "contact": f"+00 0000 {number % 10_000:04d} (fictional number)",
            "narrative": f"Synthetic demo record: {archetype.story}.",
        },
    )


CROSS_BORDER_PAIRS: Final[tuple[tuple[str, str], ...]] = (
    ("NL", "BE"),
    ("BE", "NL"),
    ("NL", "DE"),
    ("DE", "NL"),
    ("MD", "RO"),
    ("RO", "MD"),
    ("DE", "PL"),
    ("PL", "DE"),
)
"""The directed pairs a demo router lets a referral cross: the borders of the demo directory's
cross-border providers (``SAFEPASSAGE_ROUTER_CROSS_BORDER_PAIRS`` of a demo run's router)."""

DEMO_SLA_POLICY: Final = Path(__file__).resolve().parents[2] / "infra" / "demo" / "sla-policy.yaml"
"""The demo's SLA policy (720 times faster, shorter windows): the router of a demo run reads it."""

DEMO_TICK_INTERVAL_S: Final = 0.5
"""The demo router's tick (``SAFEPASSAGE_ESCALATION_TICK_INTERVAL_S``): a deadline of a few
seconds escalates within half a second of falling due."""
