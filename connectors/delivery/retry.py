"""Retry policy: what one attempt's outcome means, and how long to wait before the next.

Pure decisions with no I/O and no clock of their own, so each rule is tested
alone; the sender feeds them to tenacity. Transient connection failures and
``Retry-After`` come from :mod:`streams.retry` (``parse_retry_after`` is
re-exported).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import httpx

from streams.retry import TRANSIENT_HTTP_ERRORS, parse_retry_after

__all__ = [
    "AttemptResult",
    "Verdict",
    "next_delay",
    "parse_retry_after",
    "should_stop",
    "verdict_for_error",
    "verdict_for_status",
]


class Verdict(StrEnum):
    """What one delivery attempt means for the record."""

    DELIVERED = "delivered"
    RETRY = "retry"
    """Transient: try again after a backoff, until the horizon."""
    GIVE_UP = "give-up"
    """Final: the provider refused, retrying cannot help."""


def verdict_for_status(status: int) -> Verdict:
    """2xx delivered; 429 and 5xx retried; anything else final (4xx, and 3xx: no redirects).

    Redirects are not followed: a signed referral must not travel to a
    host nobody configured.
    """
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status == 429 or 500 <= status < 600:
        return Verdict.RETRY
    return Verdict.GIVE_UP


def verdict_for_error(error: httpx.HTTPError) -> Verdict:
    """Connection failures (:data:`~streams.retry.TRANSIENT_HTTP_ERRORS`) retried; others final."""
    return Verdict.RETRY if isinstance(error, TRANSIENT_HTTP_ERRORS) else Verdict.GIVE_UP


def next_delay(jittered: float, retry_after: float | None, remaining: float) -> float:
    """The pause before the next attempt: the jittered backoff, at least ``Retry-After``.

    Never past the horizon, so the last attempt happens at the horizon.
    """
    wanted = max(jittered, retry_after or 0.0)
    return max(0.0, min(wanted, remaining))


def should_stop(remaining: float, retry_after: float | None) -> bool:
    """Give up when the horizon has passed, or the provider asks to wait beyond it.

    Waiting out a ``Retry-After`` that ends after the horizon would only
    delay the escalation the coordinator needs.
    """
    return remaining <= 0 or (retry_after is not None and retry_after > remaining)


@dataclass(frozen=True)
class AttemptResult:
    """One HTTP attempt: its verdict and what the logs and the dead letter say about it."""

    verdict: Verdict
    status: int | None = None
    error: str | None = None
    """Class name of the transport error when there was no response."""
    retry_after: float | None = None

    def describe(self) -> str:
        """``HTTP 503`` or ``ConnectError``: safe for logs and dead-letter headers."""
        return f"HTTP {self.status}" if self.status is not None else str(self.error)
