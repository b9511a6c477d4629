"""The matching engine: which providers fit a referral, and in which order.

A provider is a *candidate* only if it passes every criterion, checked in
the order of :class:`Criterion`; the first one it fails is recorded, so an
audit record can say why nobody fitted (counts per criterion, no personal
data). The criteria:

* it is registered and offers the category;
* it was not offered this referral before;
* child-specialised when the survivor is a minor, of unknown age, not yet
  identified, or the request asks for it;
* gender: a gender-specific provider serves only its gender, and a request
  for a gender-specific service needs one serving the survivor's gender;
* accessible when the request asks for it;
* language: one of the requested languages (else the survivor's), or the
  provider arranges interpretation;
* place: it serves the requested jurisdiction in the survivor's country;
  or it is in another country, accepts cross-border referrals, the policy
  allows the pair (survivor's country → provider's), and it serves the
  requested jurisdiction (unless that is at home, when any foreign area may
  do); and one active consent grant covers category, place and crossing;
* it has a place left (in the category and within its overall capacity).

Ranking is deterministic: a score in [0, 1] from the place (local exact >
local > abroad), the language (earlier preference scores higher; an
interpreter least), free capacity and specialisation fit, with the reason
codes that made it; ties go to the smaller provider id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from processors.case import ReferralState, SurvivorProfile
from processors.consent import ConsentGrant, permitting_grant
from processors.directory import Directory, ProviderEntry, ProviderProfile
from processors.geo import country_of, narrower, overlaps
from processors.policy import RoutingPolicy
from schemas.types import Gender, Jurisdiction, ReasonCode, Score, ServiceCategory

__all__ = [
    "WEIGHTS",
    "Candidate",
    "Criterion",
    "Exclusion",
    "Match",
    "Need",
    "match",
]

WEIGHTS = {"place": 0.35, "language": 0.35, "capacity": 0.2, "fit": 0.1}
"""Share of each component in the score; they sum to 1."""

_PLACE_SCORE = {"exact": 1.0, "local": 0.85, "abroad": 0.3}
_INTERPRETATION_SCORE = 0.3


class Criterion(StrEnum):
    """Why a provider is not a candidate; the order is the order of the checks."""

    PROFILE = "profile"
    CATEGORY = "category"
    ALREADY_TRIED = "already-tried"
    CHILD = "child"
    GENDER = "gender"
    ACCESSIBILITY = "accessibility"
    LANGUAGE = "language"
    JURISDICTION = "jurisdiction"
    CROSS_BORDER = "cross-border"
    CONSENT = "consent"
    CAPACITY = "capacity"


_ORDER = list(Criterion)


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Candidate(_Value):
    """A provider that fits, with its score and the reasons for it."""

    provider_id: UUID
    score: Score
    reasons: tuple[ReasonCode, ...]
    jurisdiction: Jurisdiction
    """Where the data would go: the narrower of the provider's area and the requested one."""
    cross_border: bool


class Exclusion(_Value):
    """How many providers failed one criterion (first failure only)."""

    criterion: Criterion
    count: int


@dataclass(frozen=True)
class Need:
    """What one referral of one survivor asks of a provider, derived once per match."""

    category: ServiceCategory
    home: str
    target: str
    languages: tuple[str, ...]
    child: bool
    gender: Gender
    gender_specific: bool
    accessible: bool
    tried: frozenset[UUID]
    referral_id: UUID | None = None
    """The referral being routed: a place it already holds counts as free for it."""

    @classmethod
    def of(cls, profile: SurvivorProfile, referral: ReferralState) -> Need:
        """What ``referral`` needs: its requirements joined with the survivor's profile."""
        req = referral.requirements
        return cls(
            category=referral.category,
            home=profile.jurisdiction,
            target=req.jurisdiction,
            languages=req.languages or profile.languages,
            child=req.child_specialised or profile.treated_as_child,
            gender=profile.gender,
            gender_specific=req.gender_specific,
            accessible=req.accessibility,
            tried=frozenset(referral.tried),
            referral_id=referral.referral_id,
        )


@dataclass(frozen=True)
class Match:
    """Ranked candidates (best first) and the tally of everyone else."""

    candidates: tuple[Candidate, ...]
    exclusions: tuple[Exclusion, ...]

    @property
    def best(self) -> Candidate | None:
        """The provider to offer the referral to, if any fits."""
        return self.candidates[0] if self.candidates else None


@dataclass(frozen=True)
class _Place:
    jurisdiction: str
    kind: str  # "exact" | "local" | "abroad"

    @property
    def abroad(self) -> bool:
        return self.kind == "abroad"


def match(
    need: Need,
    grants: Iterable[ConsentGrant],
    directory: Directory,
    now: datetime,
    policy: RoutingPolicy,
) -> Match:
    """Every provider of ``directory`` judged against ``need``; pure and deterministic."""
    consents = tuple(grants)
    candidates: list[Candidate] = []
    failures: dict[Criterion, int] = {}
    for entry in directory.providers.values():
        judged = _judge(entry, need, consents, now, policy)
        if isinstance(judged, Candidate):
            candidates.append(judged)
        else:
            failures[judged] = failures.get(judged, 0) + 1
    candidates.sort(key=lambda c: (-c.score, str(c.provider_id)))
    exclusions = tuple(
        Exclusion(criterion=c, count=failures[c]) for c in Criterion if c in failures
    )
    return Match(candidates=tuple(candidates), exclusions=exclusions)


def _judge(
    entry: ProviderEntry,
    need: Need,
    grants: tuple[ConsentGrant, ...],
    now: datetime,
    policy: RoutingPolicy,
) -> Candidate | Criterion:
    profile = entry.profile
    if profile is None:
        return Criterion.PROFILE
    failed = _first_failure(entry.provider_id, profile, need)
    if failed is not None:
        return failed
    language = _language(profile, need)
    if language is None:
        return Criterion.LANGUAGE
    place = _place(profile, need, grants, now, policy)
    if isinstance(place, Criterion):
        return place
    free = entry.available(need.category, need.referral_id)
    if free <= 0:
        return Criterion.CAPACITY
    total = entry.places[need.category].total
    return _candidate(
        entry.provider_id, profile, need, place=place, language=language, room=(free, total)
    )


def _first_failure(provider_id: UUID, profile: ProviderProfile, need: Need) -> Criterion | None:
    """The first of the simple yes/no criteria the provider fails, in :class:`Criterion` order."""
    serves_gender = (
        need.gender is profile.gender_specific
        if profile.gender_specific is not None or need.gender_specific
        else True
    )
    checks = (
        (need.category in profile.categories, Criterion.CATEGORY),
        (provider_id not in need.tried, Criterion.ALREADY_TRIED),
        (profile.child_specialised or not need.child, Criterion.CHILD),
        (serves_gender, Criterion.GENDER),
        (profile.accessible or not need.accessible, Criterion.ACCESSIBILITY),
    )
    return next((criterion for passed, criterion in checks if not passed), None)


def _language(profile: ProviderProfile, need: Need) -> tuple[float, str] | None:
    """(score, reason) of the best language fit, or None when nobody could talk."""
    if not need.languages:
        return 1.0, "language:any"
    for rank, language in enumerate(need.languages):
        if language in profile.languages:
            return 1.0 / (1 + rank), f"language:{language}"
    if profile.offers_interpretation:
        return _INTERPRETATION_SCORE, "interpretation"
    return None


def _place(
    profile: ProviderProfile,
    need: Need,
    grants: tuple[ConsentGrant, ...],
    now: datetime,
    policy: RoutingPolicy,
) -> _Place | Criterion:
    """The best place this provider could serve the referral from, or why none will do."""
    home_country = country_of(need.home)
    best: _Place | None = None
    failure = Criterion.JURISDICTION
    for area in sorted(profile.jurisdictions):
        covers_target = overlaps(area, need.target)
        if country_of(area) == home_country:
            if not covers_target:
                continue
            kind = "exact" if area == need.target else "local"
        else:
            if not (covers_target or country_of(need.target) == home_country):
                continue
            if not (profile.cross_border and policy.allows_cross_border(need.home, area)):
                failure = max(failure, Criterion.CROSS_BORDER, key=_ORDER.index)
                continue
            kind = "abroad"
        where = narrower(area, need.target) if covers_target else area
        place = _Place(where, kind)
        if (
            permitting_grant(
                grants, need.category, where, home=need.home, abroad=place.abroad, now=now
            )
            is None
        ):
            failure = max(failure, Criterion.CONSENT, key=_ORDER.index)
            continue
        if best is None or _PLACE_SCORE[kind] > _PLACE_SCORE[best.kind]:
            best = place
    return failure if best is None else best


def _candidate(
    provider_id: UUID,
    profile: ProviderProfile,
    need: Need,
    *,
    place: _Place,
    language: tuple[float, str],
    room: tuple[int, int],
) -> Candidate:
    language_score, language_reason = language
    free, total = room
    total = max(total, free, 1)
    fit = 1.0 if profile.child_specialised == need.child else 0.5
    score = (
        WEIGHTS["place"] * _PLACE_SCORE[place.kind]
        + WEIGHTS["language"] * language_score
        + WEIGHTS["capacity"] * free / total
        + WEIGHTS["fit"] * fit
    )
    reasons = [
        f"category:{need.category.value.lower().replace('_', '-')}",
        "jurisdiction:cross-border" if place.abroad else "jurisdiction:local",
        f"jurisdiction:{place.jurisdiction.lower()}",
        language_reason,
    ]
    if need.child:
        reasons.append("child-specialised")
    if profile.gender_specific is not None:
        reasons.append("gender-specific")
    if need.accessible:
        reasons.append("accessible")
    reasons.append(f"capacity:available={free}")
    return Candidate(
        provider_id=provider_id,
        score=round(min(score, 1.0), 6),
        reasons=tuple(reasons),
        jurisdiction=place.jurisdiction,
        cross_border=place.abroad,
    )
