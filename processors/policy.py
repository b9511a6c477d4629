"""Configuration of the router: cross-border pairs, offer deadlines, windows.

Everything here is data passed into the pure core, so a test (or a
jurisdiction with other rules) changes behaviour by passing another policy,
not by patching code.

**Offer deadlines.** The escalation ladder takes an offer's deadline as
written on the offer (it is what the provider was told), so the router and
the ladder must agree on it. A policy with an :class:`~processors.sla.SlaPolicy`
(``sla``) therefore computes offer deadlines from that SLA file, with its
per-category overrides, child and critical-risk factors and demo time
scale; without one, the built-in :attr:`RoutingPolicy.ack_windows` apply
(DESIGN.md's figures), as before the SLA file existed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from processors.exceptions import ProcessorsError
from processors.geo import country_of
from processors.lifecycle import ReferralStatus
from processors.sla import SlaPolicy
from schemas.types import RiskLevel, ServiceCategory, Urgency, utc_millis

__all__ = ["DEFAULT_ACK_WINDOWS", "DEFAULT_POLICY", "RoutingPolicy", "both_ways"]

DEFAULT_ACK_WINDOWS: Mapping[Urgency, timedelta] = MappingProxyType(
    {
        Urgency.EMERGENCY: timedelta(hours=1),
        Urgency.PRIORITY: timedelta(hours=24),
        Urgency.ROUTINE: timedelta(hours=72),
    }
)
"""DESIGN.md's defaults: how long a provider has to accept or decline an offer."""


def both_ways(pairs: Iterable[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """Directed cross-border pairs allowed in both directions (``NL→BE`` and ``BE→NL``)."""
    return frozenset(p for a, b in pairs for p in ((a, b), (b, a)))


@dataclass(frozen=True)
class RoutingPolicy:
    """How the router decides; one frozen object per service.

    ``cross_border_pairs`` is directed: ``("NL", "BE")`` lets a survivor
    identified in the Netherlands be referred to a provider in Belgium, not
    the reverse (use :func:`both_ways`). Codes are countries or
    subdivisions; a pair of countries also covers their subdivisions.
    """

    cross_border_pairs: frozenset[tuple[str, str]] = frozenset()
    ack_windows: Mapping[Urgency, timedelta] = field(default_factory=lambda: DEFAULT_ACK_WINDOWS)
    unknown_urgency: Urgency = Urgency.PRIORITY
    """Window for an urgency symbol this reader does not know (added to the schema later)."""
    vulnerable_factor: float = 0.5
    """Deadlines shrink by this factor for a minor, unknown age or critical risk."""
    idempotency_window: int = 1000
    """How many recently applied event ids each survivor's case state remembers."""
    audit_candidates: int = 10
    """How many ranked candidates an audit record lists (exclusions are always counted)."""
    sla: SlaPolicy | None = None
    """SLA policy whose acknowledgement windows give offer deadlines; None: ``ack_windows``.

    Set it to the policy the escalation engine runs on, so that an offer's
    deadline and the ladder's first deadline are one and the same instant.
    """

    def __post_init__(self) -> None:
        """Refuse a policy that would make the core misbehave silently."""
        if self.idempotency_window < 1:
            raise ValueError("idempotency_window must be at least 1")
        if self.audit_candidates < 0:
            raise ValueError("audit_candidates must not be negative")
        if not 0.0 < self.vulnerable_factor <= 1.0:
            raise ValueError("vulnerable_factor must be in (0, 1]")
        if self.unknown_urgency not in self.ack_windows:
            raise ValueError("ack_windows must have a window for unknown_urgency")
        if any(w <= timedelta(0) for w in self.ack_windows.values()):
            raise ValueError("ack windows must be positive")

    def allows_cross_border(self, home: str, abroad: str) -> bool:
        """Whether configuration allows referring from ``home`` to a provider in ``abroad``."""
        pairs = self.cross_border_pairs
        return (home, abroad) in pairs or (country_of(home), country_of(abroad)) in pairs

    def ack_deadline(self, urgency: Urgency, *, vulnerable: bool, now: datetime) -> datetime:
        """When an offer made ``now`` must be answered (the SLA placeholder of issue 4).

        The escalation engine owns SLA policy; this gives each offer the
        deadline DESIGN.md describes so that the offer event is complete.
        """
        window = self.ack_windows.get(urgency) or self.ack_windows[self.unknown_urgency]
        if vulnerable:
            window = window * self.vulnerable_factor
        return now + window

    def offer_deadline(
        self,
        urgency: Urgency,
        category: ServiceCategory,
        *,
        child: bool,
        risk: RiskLevel,
        now: datetime,
    ) -> datetime:
        """When an offer made ``now`` must be answered, from the SLA policy when there is one.

        ``child`` is routing's notion (minor, unknown age or a child-specialised
        request), ``risk`` the case's last assessment. Without :attr:`sla`, this
        is :meth:`ack_deadline` with ``vulnerable = child or risk is CRITICAL``.
        """
        if self.sla is None:
            vulnerable = child or risk is RiskLevel.CRITICAL
            return utc_millis(self.ack_deadline(urgency, vulnerable=vulnerable, now=now))
        deadline = self.sla.referral_deadline(
            urgency=urgency,
            category=category,
            child=child,
            risk=risk,
            status=ReferralStatus.OFFERED,
            at=now,
        )
        if deadline is None:  # pragma: no cover - an offered referral always has an SLA
            raise ProcessorsError("the SLA policy gave an offer no deadline")
        return deadline


DEFAULT_POLICY = RoutingPolicy()
"""No cross-border pairs, DESIGN.md's deadlines."""
