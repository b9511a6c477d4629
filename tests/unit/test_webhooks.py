"""Signed webhooks and the delivery connector's pure parts: no broker, no process.

Signing and verification (round trip, every kind of rejection, secret
rotation, properties over any body and secret), the JSON body, the retry
policy's decisions, the commit tracker, the webhooks file, and the
dead letter of a failed delivery (its report to the router: test_delivery_reports.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from click import Group
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from connectors.delivery import (
    Verdict,
    load_providers,
    next_delay,
    parse_retry_after,
    register,
    should_stop,
    verdict_for_error,
    verdict_for_status,
)
from connectors.exceptions import (
    FutureTimestampError,
    MalformedSignatureError,
    MissingSignatureError,
    SignatureError,
    SignatureMismatchError,
    StaleTimestampError,
    WebhookConfigError,
    WebhookUndeliverableError,
)
from connectors.webhooks import (
    EVENT_TYPE_HEADER,
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TOLERANCE_S,
    check_secret,
    delivery_id,
    new_secret,
    payload,
    signed_headers,
    verify,
)
from schemas.models import ReferralCancelled, ReferralOffered
from schemas.types import Actor, CancelReason, ServiceCategory, Urgency
from streams.deadletter import DeadLetter
from streams.offsets import OffsetTracker, Partition
from tests.unit.domain_builders import T0, request, uid

SECRET = "whsec_" + base64.b64encode(b"unit-test-secret-0123456789abcdef"[:32]).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-secret-fedcba9876543210"[:32]).decode()
BODY = b'{"data":{"referral_id":"r"},"delivery_id":"d","event_type":"referral.offered"}'


def now() -> int:
    return int(time.time())


def offer(n: int = 1, *, provider: UUID | None = None) -> ReferralOffered:
    return ReferralOffered(
        survivor_id=uid(f"survivor-{n}"),
        occurred_at=T0,
        referral_id=uid(f"referral-{n}"),
        provider_id=provider or uid("provider-a"),
        category=ServiceCategory.HOUSING,
        urgency=Urgency.PRIORITY,
        score=0.75,
        reasons=("language:ro", "capacity"),
        attempt=1,
        deadline=T0 + timedelta(hours=24),
    )


def cancellation(n: int = 1) -> ReferralCancelled:
    return ReferralCancelled(
        survivor_id=uid(f"survivor-{n}"),
        occurred_at=T0,
        referral_id=uid(f"referral-{n}"),
        reason=CancelReason.CONSENT_WITHDRAWN,
        cancelled_by=Actor.AGENCY,
        provider_id=uid("provider-a"),
        category=ServiceCategory.HOUSING,
    )


def headers_for(body: bytes, *secrets: str, timestamp: int | None = None) -> dict[str, str]:
    return signed_headers(
        list(secrets) or [SECRET],
        body,
        delivery="d",
        event_type="referral.offered",
        timestamp=now() if timestamp is None else timestamp,
    )


# --------------------------------------------------------------------------- signing


def test_a_signed_request_verifies_and_yields_its_body() -> None:
    sent = now()
    headers = headers_for(BODY, timestamp=sent)

    assert verify(SECRET, headers, BODY) == json.loads(BODY)
    assert headers[ID_HEADER] == "d"
    assert headers[TIMESTAMP_HEADER] == str(sent)
    assert headers[SIGNATURE_HEADER].startswith("v1,")
    assert headers[EVENT_TYPE_HEADER] == "referral.offered"
    assert headers["Content-Type"] == "application/json"


def test_off_the_shelf_standard_webhooks_code_verifies_a_delivery() -> None:
    """What docs/webhooks.md tells providers: the library alone, no SafePassage code."""
    headers = headers_for(BODY)
    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(BODY, headers)


def test_the_signature_is_hmac_sha256_of_id_timestamp_and_body() -> None:
    """The specification's scheme, computed independently of the library."""
    sent = now()
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, f"d.{sent}.".encode() + BODY, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    assert headers_for(BODY, timestamp=sent)[SIGNATURE_HEADER] == expected


def test_header_names_are_matched_case_insensitively() -> None:
    headers = {name.upper(): value for name, value in headers_for(BODY).items()}
    assert verify([SECRET], headers, BODY) == json.loads(BODY)


def test_a_tampered_body_is_rejected() -> None:
    headers = headers_for(BODY)
    tampered = BODY.replace(b'"r"', b'"x"')
    with pytest.raises(SignatureMismatchError):
        verify(SECRET, headers, tampered)
    with pytest.raises(SignatureMismatchError, match="UTF-8"):
        verify(SECRET, headers, BODY + b"\xff")


def test_a_wrong_secret_is_rejected() -> None:
    with pytest.raises(SignatureMismatchError):
        verify(OTHER_SECRET, headers_for(BODY), BODY)


def test_a_changed_id_or_timestamp_breaks_the_signature() -> None:
    headers = headers_for(BODY)
    with pytest.raises(SignatureMismatchError):
        verify(SECRET, headers | {ID_HEADER: "e"}, BODY)
    with pytest.raises(SignatureMismatchError):
        verify(SECRET, headers | {TIMESTAMP_HEADER: str(int(headers[TIMESTAMP_HEADER]) + 1)}, BODY)


def test_old_and_future_timestamps_are_rejected_beyond_the_tolerance() -> None:
    """The library's five minutes either way: a replay later than that fails."""
    assert TOLERANCE_S == 300
    sent = now()
    assert verify(SECRET, headers_for(BODY, timestamp=sent - 290), BODY) == json.loads(BODY)
    assert verify(SECRET, headers_for(BODY, timestamp=sent + 290), BODY) == json.loads(BODY)
    with pytest.raises(StaleTimestampError, match="tolerance of 300 s"):
        verify(SECRET, headers_for(BODY, timestamp=sent - 310), BODY)
    with pytest.raises(FutureTimestampError, match="check the clocks"):
        verify(SECRET, headers_for(BODY, timestamp=sent + 310), BODY)
    with pytest.raises(StaleTimestampError):  # an old request with a wrong secret: old first
        verify(OTHER_SECRET, headers_for(BODY, timestamp=sent - 310), BODY)


@pytest.mark.parametrize("name", [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER])
def test_a_missing_header_is_its_own_error(name: str) -> None:
    headers = headers_for(BODY)
    with pytest.raises(MissingSignatureError, match=name):
        verify(SECRET, {k: v for k, v in headers.items() if k != name}, BODY)
    with pytest.raises(MissingSignatureError, match=name):
        verify(SECRET, headers | {name: "  "}, BODY)


def test_the_old_hand_written_scheme_is_no_longer_accepted() -> None:
    old = {"SafePassage-Signature": f"t={now()},v1={'a' * 64}", "SafePassage-Delivery": "d"}
    with pytest.raises(MissingSignatureError):
        verify(SECRET, old, BODY)


GOOD_V1 = "v1," + base64.b64encode(b"x" * 32).decode()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (TIMESTAMP_HEADER, "-5"),
        (TIMESTAMP_HEADER, "1.5"),
        (TIMESTAMP_HEADER, "1e9"),
        (TIMESTAMP_HEADER, "nan"),
        (TIMESTAMP_HEADER, "1" * 13),
        (SIGNATURE_HEADER, "nonsense"),  # the library would raise a bare ValueError
        (SIGNATURE_HEADER, "v1"),
        (SIGNATURE_HEADER, "v1,"),
        (SIGNATURE_HEADER, "v1,a,b"),
        (SIGNATURE_HEADER, "v1,not base64!"),
        (SIGNATURE_HEADER, "v1,YWJj"),  # base64, but of 3 bytes, not 32
        (SIGNATURE_HEADER, "v1," + base64.b64encode(b"x" * 32).decode()[:-2]),  # bad padding
        (SIGNATURE_HEADER, "v1a," + base64.b64encode(b"x" * 64).decode()),  # no v1 at all
        (SIGNATURE_HEADER, " ".join([GOOD_V1] * 9)),  # more than any rotation
        (SIGNATURE_HEADER, GOOD_V1 + " " + "v2," + "A" * 5000),  # longer than the limit
        (ID_HEADER, "d" * 5000),
    ],
)
def test_garbled_headers_are_rejected_as_malformed(name: str, value: str) -> None:
    with pytest.raises(MalformedSignatureError):
        verify(SECRET, headers_for(BODY) | {name: value}, BODY)


def test_every_rejection_is_a_signature_error_and_shows_no_secret() -> None:
    cases: list[tuple[str | list[str], dict[str, str]]] = [
        (OTHER_SECRET, headers_for(BODY)),
        (SECRET, headers_for(BODY, timestamp=now() - 10_000)),
        (SECRET, {SIGNATURE_HEADER: "v1,abc"}),
        (SECRET, headers_for(BODY) | {SIGNATURE_HEADER: "x"}),
    ]
    for secret, headers in cases:
        with pytest.raises(SignatureError) as caught:
            verify(secret, headers, BODY)
        assert SECRET not in str(caught.value) and OTHER_SECRET not in str(caught.value)


def test_spaces_and_other_versions_are_tolerated_so_the_header_can_grow() -> None:
    headers = headers_for(BODY)
    signature = f"  v1a,{base64.b64encode(b'k' * 64).decode()}   {headers[SIGNATURE_HEADER]} "
    assert verify(SECRET, headers | {SIGNATURE_HEADER: signature}, BODY) == json.loads(BODY)


def test_rotation_one_signature_per_secret_either_verifies() -> None:
    headers = headers_for(BODY, OTHER_SECRET, SECRET)
    assert headers[SIGNATURE_HEADER].count("v1,") == 2

    assert verify(SECRET, headers, BODY)  # provider still on the old secret
    assert verify(OTHER_SECRET, headers, BODY)  # provider already on the new one
    assert verify([OTHER_SECRET, SECRET], headers_for(BODY), BODY)  # provider accepts both
    with pytest.raises(SignatureMismatchError):
        verify(new_secret(), headers, BODY)


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "whsec_",
        "unit-test-secret-0123456789abcdef",  # the old scheme's kind of secret
        "whsec_" + base64.b64encode(b"k" * 23).decode(),  # too short to be safe
        "whsec_" + base64.b64encode(b"k" * 65).decode(),
        "whsec_" + base64.b64encode(b"k" * 32).decode().replace("a", "-"),
        "whsec_" + base64.b64encode(b"k" * 32).decode() + "!",  # the library would drop the "!"
    ],
)
def test_secrets_must_be_standard_webhooks_secrets(secret: str) -> None:
    with pytest.raises(ValueError, match="whsec_ and the base64 of 24 to 64") as caught:
        check_secret(secret)
    assert len(secret) <= len("whsec_") or secret not in str(caught.value)
    with pytest.raises(ValueError):
        verify(secret, headers_for(BODY), BODY)


def test_new_secrets_are_fresh_and_valid() -> None:
    first, second = new_secret(), new_secret()
    assert first != second
    assert check_secret(first) == first
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert check_secret(SECRET.removesuffix("="))  # unpadded base64 is what some tools print


def test_signing_needs_a_secret_and_a_timestamp() -> None:
    with pytest.raises(ValueError, match="at least one"):
        verify([], headers_for(BODY), BODY)
    with pytest.raises(ValueError, match="negative"):
        headers_for(BODY, timestamp=-1)


json_bodies = st.builds(
    lambda value: json.dumps(value).encode(),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=50),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=10,
    ),
)
secrets_ = st.binary(min_size=24, max_size=64).map(
    lambda key: "whsec_" + base64.b64encode(key).decode()
)


@settings(max_examples=100, deadline=None)
@given(body=json_bodies, secret=secrets_, delivery=st.uuids().map(str))
def test_any_body_and_secret_round_trip(body: bytes, secret: str, delivery: str) -> None:
    headers = signed_headers(
        secret, body, delivery=delivery, event_type="referral.offered", timestamp=now()
    )
    assert verify(secret, headers, body) == json.loads(body)
    assert verify([OTHER_SECRET, secret], headers, body) == json.loads(body)
    assert Webhook(secret).verify(body, headers) == json.loads(body)


@settings(max_examples=100, deadline=None)
@given(body=json_bodies, data=st.data())
def test_any_single_byte_change_fails(body: bytes, data: st.DataObject) -> None:
    headers = headers_for(body)
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    changed = bytearray(body)
    changed[index] ^= flip
    with pytest.raises(SignatureMismatchError):
        verify(SECRET, headers, bytes(changed))


@settings(max_examples=50, deadline=None)
@given(body=json_bodies, extra=st.text(min_size=1, max_size=8))
def test_appending_or_cutting_bytes_fails(body: bytes, extra: str) -> None:
    headers = headers_for(body + extra.encode())
    with pytest.raises(SignatureMismatchError):
        verify(SECRET, headers, body)


# --------------------------------------------------------------------------- body


def test_the_body_of_an_offer_carries_ids_codes_and_times_only() -> None:
    event = offer()
    body = payload(event, "delivery-1")
    document = json.loads(body)

    assert document["delivery_id"] == "delivery-1"
    assert document["event_type"] == "referral.offered"
    assert document["data"] == event.model_dump(mode="json")
    assert set(document["data"]) == {
        "occurred_at",
        "survivor_id",
        "referral_id",
        "provider_id",
        "category",
        "urgency",
        "score",
        "reasons",
        "attempt",
        "deadline",
    }
    assert document["data"]["deadline"] == "2025-03-02T09:00:00Z"
    assert body == payload(event, "delivery-1")  # same bytes on every attempt
    assert b" " not in body


def test_the_body_of_a_cancellation() -> None:
    document = json.loads(payload(cancellation(), "d"))
    assert document["event_type"] == "referral.cancelled"
    assert document["data"]["reason"] == "CONSENT_WITHDRAWN"
    assert document["data"]["category"] == "HOUSING"


def test_sealed_fields_are_never_in_a_body() -> None:
    """The body filter works on types: an event with a sealed field loses it, even empty."""
    requested = request(uid("s"), uid("r"))
    assert requested.notes is None
    document = json.loads(payload(requested, "d"))  # type: ignore[arg-type]
    assert "notes" not in document["data"]
    assert document["data"]["referral_id"] == str(uid("r"))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_webhook_event_body_is_its_fields_as_json(
    data: st.DataObject, events: Callable[[type[Any]], st.SearchStrategy[Any]]
) -> None:
    event = data.draw(st.one_of(events(ReferralOffered), events(ReferralCancelled)))
    document = json.loads(payload(event, "d"))
    assert document["data"] == event.model_dump(mode="json")
    assert type(event).model_validate(document["data"]) == event


def test_delivery_ids_are_stable_per_cloudevent_and_distinct_between_them() -> None:
    first = delivery_id("/safepassage/router", "e-1")
    assert first == delivery_id("/safepassage/router", "e-1")
    assert str(UUID(first)) == first
    assert first != delivery_id("/safepassage/router", "e-2")
    assert first != delivery_id("/safepassage/other", "e-1")
    with pytest.raises(ValueError, match="empty"):
        delivery_id("", "e-1")


# --------------------------------------------------------------------------- retry policy


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert verdict_for_status(status) is Verdict.DELIVERED


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 599])
def test_429_and_5xx_are_retried(status: int) -> None:
    assert verdict_for_status(status) is Verdict.RETRY


@pytest.mark.parametrize("status", [100, 301, 302, 307, 400, 401, 403, 404, 408, 409, 410, 422])
def test_other_statuses_give_up_at_once(status: int) -> None:
    assert verdict_for_status(status) is Verdict.GIVE_UP


REQUEST = httpx.Request("POST", "https://provider.example/hook")


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused", request=REQUEST),
        httpx.ConnectTimeout("slow", request=REQUEST),
        httpx.ReadTimeout("slow", request=REQUEST),
        httpx.PoolTimeout("busy", request=REQUEST),
        httpx.ReadError("reset", request=REQUEST),
        httpx.RemoteProtocolError("bad reply", request=REQUEST),
    ],
)
def test_timeouts_and_connection_errors_are_retried(error: httpx.HTTPError) -> None:
    assert verdict_for_error(error) is Verdict.RETRY


@pytest.mark.parametrize(
    "error",
    [
        httpx.UnsupportedProtocol("ftp", request=REQUEST),
        httpx.LocalProtocolError("ours", request=REQUEST),
        httpx.TooManyRedirects("loop", request=REQUEST),
    ],
)
def test_configuration_and_program_errors_are_not_retried(error: httpx.HTTPError) -> None:
    assert verdict_for_error(error) is Verdict.GIVE_UP


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120", now.timestamp()) == 120.0
    assert parse_retry_after(" 0 ", now.timestamp()) == 0.0
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now.timestamp()) == pytest.approx(90.0)
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(earlier, now.timestamp()) == 0.0
    for garbled in (None, "", "-5", "soon", "1.5", "Mon, 99 Foo 2026"):
        assert parse_retry_after(garbled, now.timestamp()) is None


def test_the_next_delay_honours_retry_after_and_never_passes_the_horizon() -> None:
    assert next_delay(0.3, None, remaining=100) == 0.3
    assert next_delay(0.3, 5.0, remaining=100) == 5.0  # Retry-After is a minimum
    assert next_delay(8.0, 5.0, remaining=100) == 8.0
    assert next_delay(8.0, None, remaining=2.5) == 2.5  # last attempt at the horizon
    assert next_delay(8.0, None, remaining=-1) == 0.0


def test_giving_up_when_out_of_time_or_asked_to_wait_past_the_horizon() -> None:
    assert not should_stop(10.0, None)
    assert not should_stop(10.0, 9.0)
    assert should_stop(10.0, 11.0)
    assert should_stop(0.0, None)
    assert should_stop(-0.1, None)


@settings(max_examples=200)
@given(
    jittered=st.floats(min_value=0, max_value=1e4),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e4),
    remaining=st.floats(min_value=-1e3, max_value=1e4),
)
def test_the_delay_is_bounded(jittered: float, retry_after: float | None, remaining: float) -> None:
    delay = next_delay(jittered, retry_after, remaining)
    assert 0.0 <= delay <= max(0.0, remaining)
    if retry_after is not None and retry_after <= remaining:
        assert delay >= retry_after


# --------------------------------------------------------------------------- commit tracker

P0 = Partition("t", 0)


def test_the_commit_position_waits_for_the_lowest_unfinished_offset() -> None:
    tracker = OffsetTracker()
    generation = tracker.assign(P0)
    for offset in (10, 11, 12, 15):  # 13, 14: a gap (a transaction marker, say)
        assert tracker.track(P0, offset) == generation
    assert tracker.position(P0) == 10

    tracker.finish(P0, 11, generation)
    tracker.finish(P0, 15, generation)
    assert tracker.position(P0) == 10  # 10 is still in backoff: nothing may be committed
    tracker.finish(P0, 10, generation)
    assert tracker.position(P0) == 12
    tracker.finish(P0, 12, generation)
    assert tracker.position(P0) == 16  # all done: past the gap
    assert tracker.pending == 0


def test_take_ready_reports_each_new_position_once_and_again_after_a_failed_commit() -> None:
    tracker = OffsetTracker()
    generation = tracker.assign(P0)
    tracker.track(P0, 0)
    assert tracker.take_ready() == [(P0, 0)]
    assert tracker.take_ready() == []
    tracker.finish(P0, 0, generation)
    assert tracker.take_ready() == [(P0, 1)]
    tracker.commit_failed(P0)
    assert tracker.take_ready() == [(P0, 1)]


def test_a_revoked_partition_ignores_late_finishes_of_its_old_records() -> None:
    tracker = OffsetTracker()
    old = tracker.assign(P0)
    tracker.track(P0, 5)
    tracker.revoke(P0)
    assert not tracker.owns(P0, old)
    assert tracker.position(P0) is None

    new = tracker.assign(P0)
    tracker.track(P0, 5)
    tracker.finish(P0, 5, old)  # the old assignment's worker finishing late
    assert tracker.position(P0) == 5
    tracker.finish(P0, 5, new)
    assert tracker.position(P0) == 6


def test_reading_an_offset_again_starts_the_partition_over() -> None:
    tracker = OffsetTracker()
    first = tracker.track(P0, 7)
    tracker.track(P0, 8)
    again = tracker.track(P0, 3)  # the consumer went back (offset reset)
    assert again != first
    assert tracker.position(P0) == 3
    tracker.finish(P0, 7, first)  # stale
    assert tracker.pending == 1


@settings(max_examples=300)
@given(data=st.data())
def test_the_commit_position_is_always_the_contiguous_finished_prefix(data: st.DataObject) -> None:
    """Never past an unfinished record; never backwards; the end once all are finished."""
    gaps = data.draw(st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=40))
    start = data.draw(st.integers(min_value=0, max_value=1000))
    offsets = [start + sum(gaps[:i]) for i in range(len(gaps))]
    partitions = [Partition("t", 0), Partition("t", 1)]
    tracker = OffsetTracker()
    generations = {p: tracker.assign(p) for p in partitions}
    unfinished = {p: set(offsets) for p in partitions}
    for p in partitions:
        for offset in offsets:
            tracker.track(p, offset)
    order = data.draw(st.permutations([(p, o) for p in partitions for o in offsets]))
    last = {p: tracker.position(p) for p in partitions}
    for p, offset in order:
        tracker.finish(p, offset, generations[p])
        unfinished[p].discard(offset)
        position = tracker.position(p)
        assert position is not None
        expected = min(unfinished[p]) if unfinished[p] else offsets[-1] + 1
        assert position == expected
        assert all(position <= o for o in unfinished[p])
        previous = last[p]
        assert previous is not None and position >= previous
        last[p] = position
    assert tracker.pending == 0


# --------------------------------------------------------------------------- giving up


def test_the_dead_letter_keeps_the_reason_of_a_failed_delivery() -> None:
    error = WebhookUndeliverableError("no 2xx within the horizon of 3600 s: 9 attempt(s)")
    letter = DeadLetter.of(
        key=b"k", value=b"v", headers=[], error=error, topic="t", partition=1, offset=7
    )
    reason = letter.reason()
    assert reason["deadletter.error.class"] == "WebhookUndeliverableError"
    assert reason["deadletter.error.message"].startswith("no 2xx within the horizon")


# --------------------------------------------------------------------------- webhooks file

PROVIDER = "6f1d2c5e-8a4b-4c3d-9e2f-1a2b3c4d5e6f"


def write(tmp_path: Path, text: str, name: str = "webhooks.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_webhooks_file_in_yaml_or_json(tmp_path: Path) -> None:
    yaml_file = write(
        tmp_path,
        f"""
providers:
  {PROVIDER}:
    url: https://provider.example/hooks/safepassage
    secrets: {SECRET}
    timeout_s: 5
""",
    )
    providers = load_providers(yaml_file)
    endpoint = providers[UUID(PROVIDER)]
    assert str(endpoint.url) == "https://provider.example/hooks/safepassage"
    assert [s.get_secret_value() for s in endpoint.secrets] == [SECRET]
    assert endpoint.timeout_s == 5
    assert SECRET not in repr(endpoint)

    document = {
        "providers": {
            PROVIDER: {
                "url": "http://127.0.0.1:8080/hook",
                "secrets": [SECRET, OTHER_SECRET],
            }
        }
    }
    json_file = write(tmp_path, json.dumps(document), "webhooks.json")
    assert len(load_providers(json_file)[UUID(PROVIDER)].secrets) == 2


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("url: http://provider.example/hook", "https"),
        ("url: ftp://provider.example/hook", "url"),
        ("secrets: short-secret", "whsec_ and the base64"),
        ("secrets: []", "secrets"),
        # Earlier builds had a jurisdiction per provider; nothing routed on it.
        ("jurisdiction: NL", "jurisdiction: Extra inputs are not permitted"),
        ("colour: blue", "colour"),
    ],
)
def test_an_invalid_entry_is_named_without_its_values(
    tmp_path: Path, entry: str, problem: str
) -> None:
    fields = {
        "url": "url: https://provider.example/hook",
        "secrets": f"secrets: {SECRET}",
    }
    fields[entry.split(":", maxsplit=1)[0]] = entry
    body = "\n".join(f"    {line}" for line in fields.values())
    path = write(tmp_path, f"providers:\n  {PROVIDER}:\n{body}\n")

    with pytest.raises(WebhookConfigError, match=problem) as caught:
        load_providers(path)
    assert SECRET not in str(caught.value)
    assert "provider.example" not in str(caught.value)


def test_file_level_problems(tmp_path: Path) -> None:
    with pytest.raises(WebhookConfigError, match="cannot read"):
        load_providers(tmp_path / "missing.yaml")
    repeated = write(
        tmp_path,
        f"providers:\n  {PROVIDER}: {{}}\n  {PROVIDER}: {{}}\n",
    )
    with pytest.raises(WebhookConfigError, match="duplicate key"):
        load_providers(repeated)
    leaky = write(tmp_path, f"providers: [{SECRET}\n", "broken.yaml")
    with pytest.raises(WebhookConfigError, match="line") as caught:
        load_providers(leaky)
    assert SECRET not in str(caught.value)
    with pytest.raises(WebhookConfigError, match="JSON"):
        load_providers(write(tmp_path, '{"providers": ', "broken.json"))
    twice = f'{{"providers": {{"{PROVIDER}": {{}}, "{PROVIDER}": {{}}}}}}'
    with pytest.raises(WebhookConfigError, match="appears more than once"):
        load_providers(write(tmp_path, twice, "twice.json"))
    with pytest.raises(WebhookConfigError, match="providers"):
        load_providers(write(tmp_path, "providers: {}\n", "empty.yaml"))


def test_the_command_checks_a_file_without_printing_urls_or_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"providers:\n  {PROVIDER}:\n    url: https://provider.example/hook\n"
        f"    secrets: [{SECRET}, {OTHER_SECRET}]\n",
    )
    group = Group("safepassage")
    register(group)

    result = CliRunner().invoke(group, ["deliver", "webhooks", "--check", "--file", str(path)])

    assert result.exit_code == 0, result.output
    assert "1 provider(s) OK" in result.output
    assert PROVIDER in result.output and "2 secret(s)" in result.output
    assert SECRET not in result.output and "provider.example" not in result.output

    broken = write(tmp_path, "providers: {}\n", "empty.yaml")
    failed = CliRunner().invoke(group, ["deliver", "webhooks", "--check", "--file", str(broken)])
    assert failed.exit_code == 1
    assert "invalid" in failed.output


def test_the_command_names_a_missing_or_bad_variable_and_takes_file_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAFEPASSAGE_WEBHOOKS_FILE", raising=False)
    group = Group("safepassage")
    register(group)
    path = write(
        tmp_path,
        f"providers:\n  {PROVIDER}:\n    url: https://provider.example/hook\n"
        f"    secrets: [{SECRET}]\n",
    )

    missing = CliRunner().invoke(group, ["deliver", "webhooks", "--check"])
    bad = CliRunner().invoke(
        group,
        ["deliver", "webhooks", "--check", "--file", str(path)],
        env={"SAFEPASSAGE_WEBHOOKS_MAX_IN_FLIGHT": "-7"},
    )
    overridden = CliRunner().invoke(
        group,
        ["deliver", "webhooks", "--check", "--file", str(path)],
        env={"SAFEPASSAGE_WEBHOOKS_FILE": str(tmp_path / "elsewhere.yaml")},
    )

    assert missing.exit_code == 1
    assert "invalid settings: SAFEPASSAGE_WEBHOOKS_FILE: Field required" in missing.output
    assert bad.exit_code == 1
    assert "SAFEPASSAGE_WEBHOOKS_MAX_IN_FLIGHT:" in bad.output and "-7" not in bad.output
    assert overridden.exit_code == 0, overridden.output
    assert f"{path}: 1 provider(s) OK" in overridden.output


def test_the_command_prints_a_fresh_standard_webhooks_secret() -> None:
    group = Group("safepassage")
    register(group)

    first = CliRunner().invoke(group, ["deliver", "new-secret"])
    second = CliRunner().invoke(group, ["deliver", "new-secret"])

    assert first.exit_code == 0, first.output
    secret = first.output.strip()
    assert check_secret(secret) == secret and secret != second.output.strip()
