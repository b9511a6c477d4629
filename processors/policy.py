"""Configuration of the router: cross-border pairs, offer deadlines, windows.

Everything here is data passed into the pure core, so a test (or a
jurisdiction with other rules) changes behaviour by passing another policy,
not by patching code.

**Offer deadlines.** The escalation ladder takes an offer's deadline as
written on the offer (it is what the provider was told), so the router and
the ladder must agree on it. Offer deadlines therefore come from one source
only, the SLA policy file (:mod:`processors.sla`): the policy's ``sla``, or
the shipped file when it has none, with its per-category overrides, child
and critical-risk factors and demo time scale.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from processors.exceptions import ProcessorsError
from processors.geo import country_of
from processors.lifecycle import ReferralStatus
from processors.sla import SlaPolicy, default_policy
from schemas.types import RiskLevel, ServiceCategory, Urgency

__all__ = ["DEFAULT_POLICY", "RoutingPolicy", "both_ways"]


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
    idempotency_window: int = 1000
    """How many recently applied event ids each survivor's case state remembers."""
    audit_candidates: int = 10
    """How many ranked candidates an audit record lists (exclusions are always counted)."""
    sla: SlaPolicy | None = None
    """SLA policy whose acknowledgement windows give offer deadlines; None: the shipped file.

    Set it to the policy the escalation engine runs on, so that an offer's
    deadline and the ladder's first deadline are one and the same instant.
    """

    def __post_init__(self) -> None:
        """Refuse a policy that would make the core misbehave silently."""
        if self.idempotency_window < 1:
            raise ValueError("idempotency_window must be at least 1")
        if self.audit_candidates < 0:
            raise ValueError("audit_candidates must not be negative")

    def allows_cross_border(self, home: str, abroad: str) -> bool:
        """Whether configuration allows referring from ``home`` to a provider in ``abroad``."""
        pairs = self.cross_border_pairs
        return (home, abroad) in pairs or (country_of(home), country_of(abroad)) in pairs

    def offer_deadline(
        self,
        urgency: Urgency,
        category: ServiceCategory,
        *,
        child: bool,
        risk: RiskLevel,
        now: datetime,
    ) -> datetime:
        """When an offer made ``now`` must be answered, from the SLA policy.

        ``child`` is routing's notion (minor, unknown age or a child-specialised
        request), ``risk`` the case's last assessment. Without :attr:`sla`,
        the shipped SLA file decides, as it does for a worker configured
        without one: there is no second table of windows to drift from it.
        """
        sla = self.sla if self.sla is not None else default_policy()
        deadline = sla.referral_deadline(
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
"""No cross-border pairs, offer deadlines from the shipped SLA file."""
