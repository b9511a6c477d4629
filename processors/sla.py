"""The SLA policy: how long each party has before a referral or a case escalates.

Loaded from a YAML file (the shipped default is ``processors/sla_policy.yaml``,
which documents every key) and validated *at load*: a worker must refuse to
start with a policy that would silently escalate too late, so every problem
is reported with the key it concerns (``acknowledge.emergency: must be
positive``), all problems at once, as one :class:`SlaPolicyError`.

Rules the policy encodes (the file documents the figures):

* **Acknowledge** an offer (accept or decline) within a window per urgency;
  an urgency this reader does not know (``UNKNOWN``, a symbol added to the
  schema later) gets the *shortest* window: when in doubt, faster.
* **Start service** within a window after acceptance.
* **Shorter for the vulnerable**: a factor in (0, 1] for a child (minor,
  unknown age or a child-specialised request: EU Directive 2011/36/EU,
  Art. 13(2)) and one for critical risk. The strictest applicable factor
  applies; they do not compound (a child at critical risk gets the smaller
  of the two factors, not their product), so one figure in the file says
  exactly how fast the fastest case is.
* **Per-category overrides** replace the base window before any factor.
* **Legal clocks** of a case: the recovery and reflection period (at least
  30 days, Council of Europe Convention on Action against Trafficking in
  Human Beings, Art. 13; a shorter one is refused) with an alert some time
  before its end, and the reasonable-grounds decision target in working
  days (Monday to Friday, minus listed holidays, in a configured zone).
* **Retention** of a closed case: the survivor's data is erased (their key
  shredded) ``retention.after_closure`` after the case was closed (default
  365 days, at most 100 years; optional, so files written before the key
  existed keep loading). Storage limitation: nobody has to remember to ask.
* **Time scale** for demos: every duration is divided by it (60 turns an
  SLA hour into a real minute). Validation applies to the configured,
  unscaled figures, so a demo cannot hide a 20-day reflection period.

The policy is a frozen value and every method is a pure function of its
arguments; nothing here reads a clock.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from processors.exceptions import SlaPolicyError  # re-exported: it used to live here
from processors.geo import within
from processors.lifecycle import ReferralStatus
from processors.unique_keys import load_unique, yaml_problem
from schemas.types import Jurisdiction, RiskLevel, ServiceCategory, Urgency, utc_millis

__all__ = [
    "DEFAULT_POLICY_FILE",
    "DEFAULT_RETENTION",
    "MAX_RETENTION",
    "MIN_REFLECTION_PERIOD",
    "AckOverrides",
    "AckWindows",
    "CategoryOverride",
    "LegalClocks",
    "ReasonableGrounds",
    "RecoveryReflection",
    "Retention",
    "Shortening",
    "SlaPolicy",
    "SlaPolicyError",
    "add_working_days",
    "default_policy",
    "load_policy",
    "parse_duration",
    "parse_policy",
    "policy_from_mapping",
]

DEFAULT_POLICY_FILE = "sla_policy.yaml"
"""Name of the shipped default policy inside the ``processors`` package."""

MIN_REFLECTION_PERIOD = timedelta(days=30)
"""Council of Europe Convention, Art. 13: the recovery and reflection period is at least 30 days."""

DEFAULT_RETENTION = timedelta(days=365)
"""How long a closed case is kept before its survivor's data is erased, unless configured."""
MAX_RETENTION = timedelta(days=36_500)
"""Upper bound of the retention period (100 years): beyond it nothing is ever erased in
practice, and the erasure deadline must stay computable (and encodable in a deadline key)."""


# --------------------------------------------------------------------------- durations

_DURATION = re.compile(
    r"^(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$"
)
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(value: object) -> timedelta:
    """A duration written ``72h``, ``7d``, ``1h30m`` or ``2w`` (units w, d, h, m, s).

    Bare numbers are refused: ``72`` could mean hours or seconds, and a
    guess would move a deadline by a factor of 3600.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"write a duration with a unit, e.g. '72h' or '7d' (got {value!r})")
    text = value.strip().replace(" ", "")
    if text.startswith("-"):
        raise ValueError(f"must be positive (got {value!r})")
    found = _DURATION.match(text)
    if not text or found is None:
        raise ValueError(f"not a duration: {value!r}; write e.g. '72h', '7d' or '1h30m'")
    parts = {_UNITS[unit]: int(n) for unit, n in found.groupdict().items() if n is not None}
    return timedelta(**parts)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be positive")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
"""A positive duration, written with units in the file."""

Factor = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
"""A shortening factor: 0.5 halves a window, 1 leaves it unchanged."""


# --------------------------------------------------------------------------- the model


class _Config(BaseModel):
    """Frozen, and strict about keys: a misspelt key is an error, not a silent default."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class AckWindows(_Config):
    """Time a provider has to accept or decline an offer, by urgency (all three required)."""

    emergency: Duration
    priority: Duration
    routine: Duration

    def get(self, urgency: Urgency) -> timedelta:
        """The window of ``urgency``; the shortest one for an urgency this reader does not know."""
        if urgency is Urgency.EMERGENCY:
            return self.emergency
        if urgency is Urgency.PRIORITY:
            return self.priority
        if urgency is Urgency.ROUTINE:
            return self.routine
        return min(self.emergency, self.priority, self.routine)


class AckOverrides(_Config):
    """Per-category replacements of some acknowledgement windows (the rest stay as is)."""

    emergency: Duration | None = None
    priority: Duration | None = None
    routine: Duration | None = None

    def over(self, base: AckWindows) -> AckWindows:
        """``base`` with these overrides applied."""
        return base.model_copy(update=self.model_dump(exclude_none=True))


class CategoryOverride(_Config):
    """What one service category does differently."""

    acknowledge: AckOverrides = AckOverrides()
    start_service: Duration | None = None


class Shortening(_Config):
    """Factors that shorten windows for a child and for critical risk (the smaller applies)."""

    child: Factor
    critical_risk: Factor

    def factor(self, *, child: bool, risk: RiskLevel) -> float:
        """The factor for a case: the strictest that applies, 1.0 when none does."""
        factors = [1.0]
        if child:
            factors.append(self.child)
        if risk is RiskLevel.CRITICAL:
            factors.append(self.critical_risk)
        return min(factors)


class RecoveryReflection(_Config):
    """The recovery and reflection period of a case and its early alert."""

    period: Duration
    alert_before: Duration

    @field_validator("period")
    @classmethod
    def _at_least_thirty_days(cls, value: timedelta) -> timedelta:
        """A shorter period would breach the Convention; refuse it rather than apply it."""
        if value < MIN_REFLECTION_PERIOD:
            raise ValueError(
                "the recovery and reflection period must be at least 30 days (Council of "
                f"Europe Convention on Action against Trafficking in Human Beings, Art. 13); "
                f"got {value}"
            )
        return value

    @model_validator(mode="after")
    def _alert_inside_period(self) -> RecoveryReflection:
        """An alert before the period even starts would be noise, not a warning."""
        if self.alert_before >= self.period:
            raise ValueError("alert_before must be shorter than period")
        return self


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name, e.g. Europe/London)"
        ) from exc
    return value


class ReasonableGrounds(_Config):
    """Target for the reasonable-grounds decision, in working days after identification."""

    working_days: Annotated[int, Field(ge=1, le=366)]
    jurisdictions: tuple[Jurisdiction, ...] = ()
    """Where the target applies (a country covers its subdivisions); empty: everywhere."""
    holidays: tuple[date, ...] = ()
    """Days that are not working days even if Monday to Friday."""
    timezone: Annotated[str, AfterValidator(_zone)] = "UTC"
    """Zone whose calendar decides what a working day is."""

    def applies(self, jurisdiction: str) -> bool:
        """Whether the target applies to a case identified in ``jurisdiction``."""
        return not self.jurisdictions or any(within(jurisdiction, j) for j in self.jurisdictions)


class LegalClocks(_Config):
    """Case-level clocks; ``reasonable_grounds: null`` in the file turns that target off."""

    recovery_reflection: RecoveryReflection
    reasonable_grounds: ReasonableGrounds | None


class Retention(_Config):
    """How long a closed case keeps its survivor's data (GDPR Art. 5(1)(e), storage limitation).

    Optional in the file: a policy written before retention existed keeps
    loading, with the default. The erasure itself is the one an agency can
    ask for (:mod:`processors.handlers`); this only says when the platform
    does it unasked.
    """

    after_closure: Duration = DEFAULT_RETENTION
    """Time from ``case.closed`` to the erasure: positive, at most :data:`MAX_RETENTION`."""

    @field_validator("after_closure")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        """Refuse a period the deadline arithmetic could not carry (an overflow at run time)."""
        if value > MAX_RETENTION:
            raise ValueError(f"must be at most {MAX_RETENTION.days}d (got {value})")
        return value


def _category_key(value: object) -> object:
    """Accept ``HOUSING`` or the topic spelling ``legal-aid``; refuse what is not a category."""
    if not isinstance(value, Mapping):
        return value
    known = [c.value for c in ServiceCategory if c is not ServiceCategory.UNKNOWN]
    out: dict[object, object] = {}
    for key, override in value.items():
        name = str(key).strip().upper().replace("-", "_")
        if name not in known:
            raise ValueError(f"unknown category {key!r}; known: {', '.join(known)}")
        if name in out:
            raise ValueError(f"category {name} is configured twice (as {key!r} too)")
        out[name] = override
    return out


class SlaPolicy(_Config):
    """The whole SLA policy (see the module docstring and ``sla_policy.yaml``)."""

    version: Literal[1]
    """Format version of the file, so a future format can be told apart."""
    time_scale: Annotated[float, Field(ge=1.0, le=1_000_000.0, allow_inf_nan=False)] = 1.0
    """Divides every duration (60: one SLA hour passes in one real minute); demos only."""
    acknowledge: AckWindows
    start_service: Duration
    shorter_for: Shortening
    categories: Annotated[
        dict[ServiceCategory, CategoryOverride], BeforeValidator(_category_key)
    ] = Field(default_factory=dict)
    legal_clocks: LegalClocks
    retention: Retention = Retention()

    # ------------------------------------------------------------------ windows

    def scaled(self, duration: timedelta) -> timedelta:
        """``duration`` as it passes on the clock (divided by :attr:`time_scale`)."""
        return duration / self.time_scale if self.time_scale != 1.0 else duration

    def ack_window(
        self, urgency: Urgency, category: ServiceCategory, *, child: bool, risk: RiskLevel
    ) -> timedelta:
        """How long a provider has to answer an offer (scaled)."""
        override = self.categories.get(category)
        windows = override.acknowledge.over(self.acknowledge) if override else self.acknowledge
        factor = self.shorter_for.factor(child=child, risk=risk)
        return self.scaled(windows.get(urgency) * factor)

    def start_window(self, category: ServiceCategory, *, child: bool, risk: RiskLevel) -> timedelta:
        """How long a provider has to start a service it accepted (scaled)."""
        override = self.categories.get(category)
        window = (override.start_service if override else None) or self.start_service
        return self.scaled(window * self.shorter_for.factor(child=child, risk=risk))

    def referral_deadline(
        self,
        *,
        urgency: Urgency,
        category: ServiceCategory,
        child: bool,
        risk: RiskLevel,
        status: ReferralStatus,
        at: datetime,
    ) -> datetime | None:
        """When a referral that entered ``status`` at ``at`` must have moved on.

        ``offered``: the provider must accept or decline; ``accepted``: it
        must start the service. Every other status runs no SLA clock (None):
        a held referral waits for consent, and pressing for it would go
        against the survivor's choice.
        """
        if status is ReferralStatus.OFFERED:
            window = self.ack_window(urgency, category, child=child, risk=risk)
        elif status is ReferralStatus.ACCEPTED:
            window = self.start_window(category, child=child, risk=risk)
        else:
            return None
        return utc_millis(at + window)

    # ------------------------------------------------------------------ legal clocks

    def reflection_end(self, start: datetime) -> datetime:
        """End of the recovery and reflection period that started at ``start`` (scaled)."""
        return utc_millis(start + self.scaled(self.legal_clocks.recovery_reflection.period))

    def reflection_alert(self, start: datetime) -> datetime:
        """When to warn that the period is ending without legal aid accepted (scaled)."""
        clock = self.legal_clocks.recovery_reflection
        return utc_millis(start + self.scaled(clock.period - clock.alert_before))

    def reasonable_grounds_due(self, start: datetime, jurisdiction: str) -> datetime | None:
        """Target of the reasonable-grounds decision; None where no target applies.

        The calendar answer (``working_days`` later, same local time) is
        computed first and the interval is then scaled, so a demo keeps the
        weekend gap in proportion.
        """
        clock = self.legal_clocks.reasonable_grounds
        if clock is None or not clock.applies(jurisdiction):
            return None
        due = add_working_days(
            start, clock.working_days, holidays=frozenset(clock.holidays), zone=clock.timezone
        )
        return utc_millis(start + self.scaled(due - start))

    # ------------------------------------------------------------------ retention

    def retention_end(self, closed_at: datetime) -> datetime:
        """When the data of a case closed at ``closed_at`` is erased (scaled, like every clock)."""
        return utc_millis(closed_at + self.scaled(self.retention.after_closure))


def add_working_days(
    start: datetime, days: int, *, holidays: frozenset[date] = frozenset(), zone: str = "UTC"
) -> datetime:
    """``start`` moved ``days`` working days later, at the same local time of day.

    A working day is Monday to Friday in ``zone`` and not in ``holidays``.
    The day of ``start`` does not count (a referral on Friday afternoon is
    due five working days later, the next Friday afternoon), and a start on
    a weekend counts from the following Monday.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if days < 0:
        raise ValueError("days must not be negative")
    tz = ZoneInfo(zone)
    local = start.astimezone(tz)
    day = local.date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in holidays:
            counted += 1
    wall: time = local.timetz().replace(tzinfo=None)
    return datetime.combine(day, wall, tzinfo=tz).astimezone(start.tzinfo)


# --------------------------------------------------------------------------- loading


def _describe(error: Mapping[str, Any]) -> str:
    loc = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "missing":
        return f"{loc}: missing (required key)"
    if kind == "extra_forbidden":
        return f"{loc}: unknown key"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{loc}: {message}"


def policy_from_mapping(data: object, source: str = "<mapping>") -> SlaPolicy:
    """Validate already-parsed data (e.g. from a test); errors name the keys."""
    if not isinstance(data, Mapping):
        raise SlaPolicyError(source, ("(top level): must be a mapping of keys to values",))
    try:
        return SlaPolicy.model_validate(data)
    except ValidationError as exc:
        problems = tuple(_describe(e) for e in exc.errors(include_url=False))
        raise SlaPolicyError(source, problems) from exc


def parse_policy(text: str, source: str = "<string>") -> SlaPolicy:
    """Parse and validate the YAML text of a policy."""
    try:
        data = load_unique(text)
    except yaml.YAMLError as exc:
        raise SlaPolicyError(source, (f"not valid YAML: {yaml_problem(exc)}",)) from exc
    return policy_from_mapping(data, source)


def load_policy(path: str | Path | None = None) -> SlaPolicy:
    """Load a policy file; the shipped default when ``path`` is None."""
    if path is None:
        text = resources.files("processors").joinpath(DEFAULT_POLICY_FILE).read_text("utf-8")
        return parse_policy(text, f"processors/{DEFAULT_POLICY_FILE}")
    file = Path(path)
    try:
        text = file.read_text("utf-8")
    except OSError as exc:
        raise SlaPolicyError(str(file), (f"cannot read the file: {exc.strerror or exc}",)) from exc
    return parse_policy(text, str(file))


@functools.cache
def default_policy() -> SlaPolicy:
    """The shipped default policy, loaded once (a frozen value, safe to share)."""
    return load_policy()
