"""Settings of the router service (environment prefix ``SAFEPASSAGE_ROUTER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from processors.policy import RoutingPolicy
from processors.sla import SlaPolicy, default_policy, load_policy

__all__ = ["RouterSettings"]


class RouterSettings(BaseSettings):
    """What an operator configures about routing; turned into a :class:`RoutingPolicy`."""

    model_config = SettingsConfigDict(env_prefix="SAFEPASSAGE_ROUTER_", frozen=True)

    cross_border_pairs: tuple[tuple[str, str], ...] = Field(
        default=(),
        description=(
            "SAFEPASSAGE_ROUTER_CROSS_BORDER_PAIRS: JSON list of directed [home, abroad] "
            'jurisdiction pairs a referral may cross, e.g. [["NL","BE"],["BE","NL"]]; '
            "the survivor's cross-border consent is needed as well."
        ),
    )
    idempotency_window: int = Field(
        default=1000,
        ge=1,
        description="SAFEPASSAGE_ROUTER_IDEMPOTENCY_WINDOW: event ids remembered per survivor.",
    )
    sla_policy: Path | None = Field(
        default=None,
        description=(
            "SAFEPASSAGE_ROUTER_SLA_POLICY: path of the SLA policy YAML file whose "
            "acknowledgement windows give offer deadlines; unset: the shipped "
            "processors/sla_policy.yaml. Give the escalation engine the same file, so an "
            "offer's deadline and the ladder's first deadline agree."
        ),
    )

    def sla(self) -> SlaPolicy:
        """The SLA policy: the configured file, else the shipped default.

        Loaded and validated here, so a worker with a bad file refuses to
        start with :class:`~processors.exceptions.SlaPolicyError` naming
        every bad key, rather than routing with deadlines nobody configured.
        """
        return default_policy() if self.sla_policy is None else load_policy(self.sla_policy)

    def to_policy(self) -> RoutingPolicy:
        """The routing policy these settings describe (offer deadlines from :meth:`sla`)."""
        return RoutingPolicy(
            cross_border_pairs=frozenset(self.cross_border_pairs),
            idempotency_window=self.idempotency_window,
            sla=self.sla(),
        )
