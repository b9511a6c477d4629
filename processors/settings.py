"""Settings of the router service (environment prefix ``SAFEPASSAGE_ROUTER_``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from processors.policy import RoutingPolicy
from processors.sla import SlaPolicy, default_policy, load_policy

__all__ = ["ClockMode", "EscalationSettings", "RouterSettings"]


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
            "offer's deadline and the ladder's first deadline agree. Its optional "
            "retention.after_closure (default 365d, at most 36500d) is how long a closed "
            "case is kept before the survivor's data is erased."
        ),
    )

    stall_timeout_s: float = Field(
        default=60.0,
        ge=5.0,
        description=(
            "SAFEPASSAGE_ROUTER_STALL_TIMEOUT_S: seconds an input partition the worker owns "
            "may have records waiting with no committed progress before the worker stops "
            "with exit code 75 and `safepassage worker` starts a fresh one "
            "(faust-streaming can leave a partition assigned but never fetched)."
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


class ClockMode(StrEnum):
    """Where the escalation ladder's time comes from (see :mod:`streams.ticks`)."""

    WALL = "wall"
    """Each worker ticks the partitions it owns with its own clock."""
    EXTERNAL = "external"
    """Only ticks published from outside (``safepassage escalations tick``, tests)."""


class EscalationSettings(BaseSettings):
    """How the ladder keeps time (environment prefix ``SAFEPASSAGE_ESCALATION_``).

    The SLA windows themselves (and ``time_scale`` for demos) live in the
    SLA policy file, shared with the router (``SAFEPASSAGE_ROUTER_SLA_POLICY``).
    """

    model_config = SettingsConfigDict(env_prefix="SAFEPASSAGE_ESCALATION_", frozen=True)

    clock: ClockMode = Field(
        default=ClockMode.WALL,
        description=(
            "SAFEPASSAGE_ESCALATION_CLOCK: wall (each worker ticks its partitions) or "
            "external (time is driven by published ticks only)."
        ),
    )
    tick_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description=(
            "SAFEPASSAGE_ESCALATION_TICK_INTERVAL_S: seconds between a worker's ticks (wall "
            "clock): how late at most a deadline escalates, beyond the processing of its "
            "partition's backlog."
        ),
    )
    max_due_per_tick: int = Field(
        default=500,
        ge=1,
        description=(
            "SAFEPASSAGE_ESCALATION_MAX_DUE_PER_TICK: due deadlines one tick handles; more "
            "are handled by a follow-up tick, so a burst never stalls a partition's events."
        ),
    )
