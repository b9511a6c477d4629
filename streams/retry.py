"""The one retry helper of the HTTP edges: which failures are transient, and ``Retry-After``.

The SDKs' HTTP transport and the webhook delivery connector each keep their
own policy of *which statuses* are worth a retry (the intake API and a
provider's endpoint mean different things by a 500), but both read a
``Retry-After`` and judge a failed connection the same way, here.
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC, datetime

import httpx

__all__ = ["TRANSIENT_HTTP_ERRORS", "parse_retry_after"]

TRANSIENT_HTTP_ERRORS: tuple[type[httpx.HTTPError], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)
"""Failures of the connection, not of the request: the server may never have seen it.

What is left (an unsupported scheme, our own protocol fault, too many
redirects) is a configuration or program error no retry can fix.
"""


def parse_retry_after(value: str | None, now: datetime | float | None = None) -> float | None:
    """Seconds a ``Retry-After`` asks to wait: delta-seconds or an HTTP-date.

    ``now`` is an aware datetime or Unix seconds (the current time if None).
    None when absent or unreadable (the caller's backoff alone decides); a
    date in the past gives 0. An HTTP-date is always GMT (RFC 9110, 5.6.7),
    so one that names no zone (or the obsolete ``-0000``) is read as UTC.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if now is None:
        reference = datetime.now(UTC).timestamp()
    elif isinstance(now, datetime):
        reference = now.timestamp()
    else:
        reference = float(now)
    delta = moment.timestamp() - reference
    return max(0.0, delta) if math.isfinite(delta) else None
