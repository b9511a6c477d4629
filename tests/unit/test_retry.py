"""The one retry helper: ``Retry-After`` and transient connection failures, for every HTTP edge.

The SDKs' HTTP transport and the webhook connector used to read an
HTTP-date without a time zone differently (one as UTC, one not at all);
RFC 9110 says an HTTP-date is always GMT, so both now wait as asked.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from connectors.delivery import Verdict, verdict_for_error
from connectors.delivery import parse_retry_after as delivery_parse
from streams.retry import TRANSIENT_HTTP_ERRORS, parse_retry_after

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_a_date_without_a_zone_is_gmt_as_rfc_9110_says() -> None:
    # The bug: the webhook connector returned None here (no pause), the SDK 30 s.
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30", NOW) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 -0000", NOW) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", NOW) == 30.0
    # The connector reads the same header the same way (it passes Unix seconds).
    assert delivery_parse("Thu, 01 Jan 2026 12:00:30", NOW.timestamp()) == 30.0


def test_now_may_be_an_aware_datetime_or_unix_seconds() -> None:
    later = "Thu, 01 Jan 2026 13:00:00 GMT"
    assert parse_retry_after(later, NOW) == parse_retry_after(later, NOW.timestamp()) == 3600.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", NOW) == 0.0
    assert parse_retry_after("Thu, 01 Jan 2026 14:00:00 +0200", NOW) == 0.0


@pytest.mark.parametrize("garbled", [None, "soon", "-5", "1.5", "", "Mon, 99 Foo 2026"])
def test_what_cannot_be_read_is_none(garbled: str | None) -> None:
    assert parse_retry_after(garbled, NOW) is None


def test_connection_failures_are_transient_and_our_own_faults_are_not() -> None:
    request = httpx.Request("POST", "https://provider.example/hook")
    transient = [
        httpx.ConnectError("refused", request=request),
        httpx.ReadTimeout("slow", request=request),
        httpx.RemoteProtocolError("broken", request=request),
        httpx.ProxyError("proxy"),
    ]
    final = [httpx.UnsupportedProtocol("ftp"), httpx.TooManyRedirects("loop", request=request)]
    assert all(isinstance(error, TRANSIENT_HTTP_ERRORS) for error in transient)
    assert not any(isinstance(error, TRANSIENT_HTTP_ERRORS) for error in final)
    assert [verdict_for_error(e) for e in transient] == [Verdict.RETRY] * len(transient)
    assert [verdict_for_error(e) for e in final] == [Verdict.GIVE_UP] * len(final)
