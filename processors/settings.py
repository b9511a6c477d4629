"""Settings of the router service (environment prefix ``SAFEPASSAGE_ROUTER_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from processors.policy import RoutingPolicy

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

    def to_policy(self) -> RoutingPolicy:
        """The routing policy these settings describe."""
        return RoutingPolicy(
            cross_border_pairs=frozenset(self.cross_border_pairs),
            idempotency_window=self.idempotency_window,
        )
