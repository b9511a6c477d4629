"""What passes from the consumer loop to a provider's worker, and what a run tallies."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from streams.cloudevents import Headers
from streams.codec import Decoded
from streams.offsets import Partition

__all__ = ["DeliveryStats", "Job"]


@dataclass(frozen=True)
class Job:
    """One record addressed to a configured provider, waiting in that provider's queue."""

    partition: Partition
    offset: int
    generation: int
    provider_id: UUID
    key: bytes | None
    value: bytes | None
    headers: Headers | None
    deadline: float
    """Monotonic time after which delivery is given up."""
    decoded: Decoded | None
    error: Exception | None
    """Why the record did not decode (it is dead-lettered, not delivered)."""


@dataclass
class DeliveryStats:
    """What a run did, for tests and the closing line of the command."""

    delivered: int = 0
    dead_lettered: int = 0
    reported: int = 0
    """Given-up deliveries reported to the router (``referral.undelivered``)."""
    skipped: int = 0
    """Records for providers that are not in the webhooks file."""
    attempts: int = 0
