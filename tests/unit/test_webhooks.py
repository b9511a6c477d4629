"""Signed webhooks and the delivery connector's pure parts: no broker, no process.

Signing and verification (round trip, every kind of rejection, secret
rotation, properties over any body and secret), the JSON body, the retry
policy's decisions, the commit tracker, the webhooks file, and the
escalation a failed delivery produces.
"""

from __future__ import annotations

import json
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

from connectors.delivery import (
    COORDINATOR_LEVEL,
    ESCALATION_ID_NAMESPACE,
    Verdict,
    escalation_for,
    escalation_id,
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
    DELIVERY_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    delivery_id,
    payload,
    sign,
    signature_header,
    signed_headers,
    verify,
)
from processors.escalation import ESCALATION_ID_NAMESPACE as LADDER_NAMESPACE
from schemas.models import ReferralCancelled, ReferralOffered
from schemas.types import Actor, CancelReason, EscalationReason, ServiceCategory, Urgency
from streams.deadletter import DeadLetter
from streams.offsets import OffsetTracker, Partition
from tests.unit.domain_builders import T0, request, uid

SECRET = "whsec-unit-test-0123456789abcdef"
OTHER_SECRET = "whsec-another-secret-fedcba9876"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
BODY = b'{"data":{"referral_id":"r"},"delivery_id":"d","event_type":"referral.offered"}'


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


def headers_for(body: bytes, *secrets: str, timestamp: int = NOW) -> dict[str, str]:
    return signed_headers(
        list(secrets) or [SECRET],
        body,
        delivery="d",
        event_type="referral.offered",
        timestamp=timestamp,
    )


# --------------------------------------------------------------------------- signing


def test_a_signed_request_verifies_and_yields_its_timestamp() -> None:
    headers = headers_for(BODY)

    assert verify(SECRET, headers, BODY, now=NOW) == NOW
    assert headers["Content-Type"] == "application/json"
    assert headers[DELIVERY_HEADER] == "d"
    assert headers[EVENT_TYPE_HEADER] == "referral.offered"
    assert headers[SIGNATURE_HEADER] == f"t={NOW},v1={sign(SECRET, NOW, BODY)}"


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    """The documented scheme, computed independently of the module."""
    import hashlib  # noqa: PLC0415
    import hmac  # noqa: PLC0415

    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == expected


def test_header_names_are_matched_case_insensitively() -> None:
    headers = {name.lower(): value for name, value in headers_for(BODY).items()}
    assert verify([SECRET], headers, BODY, now=NOW) == NOW


def test_a_tampered_body_is_rejected() -> None:
    headers = headers_for(BODY)
    tampered = BODY.replace(b'"r"', b'"x"')
    with pytest.raises(SignatureMismatchError):
        verify(SECRET, headers, tampered, now=NOW)


def test_a_wrong_secret_is_rejected() -> None:
    with pytest.raises(SignatureMismatchError):
        verify(OTHER_SECRET, headers_for(BODY), BODY, now=NOW)


def test_a_changed_timestamp_breaks_the_signature() -> None:
    headers = headers_for(BODY)
    headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER].replace(f"t={NOW}", f"t={NOW + 1}")
    with pytest.raises(SignatureMismatchError):
        verify(SECRET, headers, BODY, now=NOW)


def test_stale_and_future_timestamps_are_rejected_beyond_the_tolerance() -> None:
    headers = headers_for(BODY)

    assert verify(SECRET, headers, BODY, now=NOW + 300) == NOW  # the edge is inside
    assert verify(SECRET, headers, BODY, now=NOW - 300) == NOW
    with pytest.raises(StaleTimestampError):
        verify(SECRET, headers, BODY, now=NOW + 301)
    with pytest.raises(FutureTimestampError):
        verify(SECRET, headers, BODY, now=NOW - 301)
    with pytest.raises(StaleTimestampError):
        verify(SECRET, headers, BODY, now=NOW + 31, tolerance_s=30)


def test_a_missing_signature_header_is_its_own_error() -> None:
    headers = headers_for(BODY)
    del headers[SIGNATURE_HEADER]
    with pytest.raises(MissingSignatureError):
        verify(SECRET, headers, BODY, now=NOW)
    with pytest.raises(MissingSignatureError):
        verify(SECRET, {SIGNATURE_HEADER: "  "}, BODY, now=NOW)


GOOD_V1 = "a" * 64


@pytest.mark.parametrize(
    "header",
    [
        "nonsense",
        f"v1={GOOD_V1}",  # no timestamp
        f"t=,v1={GOOD_V1}",
        f"t=-5,v1={GOOD_V1}",
        f"t=1.5,v1={GOOD_V1}",
        f"t=abc,v1={GOOD_V1}",
        f"t={NOW},t={NOW},v1={GOOD_V1}",  # two timestamps
        f"t={NOW}",  # no signature
        f"t={NOW},v0={GOOD_V1}",  # only a scheme we do not know
        f"t={NOW},v1=xyz",
        f"t={NOW},v1={GOOD_V1[:-1]}",
        f"t={NOW},v1={GOOD_V1},,",
        f"t={NOW},=v1",
        f"t={NOW}," + ",".join(f"v1={GOOD_V1}" for _ in range(9)),  # more than any rotation
        f"t={NOW},v1={GOOD_V1}," + "x=" * 3000,  # longer than the limit
    ],
)
def test_a_garbled_signature_header_is_rejected(header: str) -> None:
    with pytest.raises(MalformedSignatureError):
        verify(SECRET, {SIGNATURE_HEADER: header}, BODY, now=NOW)


def test_every_rejection_is_a_signature_error_and_shows_no_secret() -> None:
    cases: list[tuple[str | list[str], dict[str, str], int]] = [
        (OTHER_SECRET, headers_for(BODY), NOW),
        (SECRET, headers_for(BODY), NOW + 10_000),
        (SECRET, {SIGNATURE_HEADER: "t=1"}, NOW),
    ]
    for secret, headers, now in cases:
        with pytest.raises(SignatureError) as caught:
            verify(secret, headers, BODY, now=now)
        assert SECRET not in str(caught.value) and OTHER_SECRET not in str(caught.value)


def test_spaces_and_unknown_schemes_are_tolerated_so_the_header_can_grow() -> None:
    signature = sign(SECRET, NOW, BODY)
    header = f"t={NOW}, v0=deadbeef, v1={signature}, v2=future"
    assert verify(SECRET, {SIGNATURE_HEADER: header}, BODY, now=NOW) == NOW


def test_rotation_two_v1_values_either_secret_verifies() -> None:
    header = signature_header([OTHER_SECRET, SECRET], NOW, BODY)
    assert header.count("v1=") == 2
    headers = {SIGNATURE_HEADER: header}

    assert verify(SECRET, headers, BODY, now=NOW) == NOW  # provider still on the old secret
    assert verify(OTHER_SECRET, headers, BODY, now=NOW) == NOW  # provider already on the new
    one = {SIGNATURE_HEADER: signature_header(SECRET, NOW, BODY)}
    assert verify([OTHER_SECRET, SECRET], one, BODY, now=NOW) == NOW  # provider accepts both
    with pytest.raises(SignatureMismatchError):
        verify("a-third-secret-nobody-configured", headers, BODY, now=NOW)


def test_secrets_and_timestamps_are_checked() -> None:
    with pytest.raises(ValueError, match="empty"):
        sign("", NOW, BODY)
    with pytest.raises(ValueError, match="at least one"):
        verify([], headers_for(BODY), BODY, now=NOW)
    with pytest.raises(ValueError, match="negative"):
        sign(SECRET, -1, BODY)


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=2048),
    secret=st.binary(min_size=1, max_size=64)
    | st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=64),
    timestamp=st.integers(min_value=0, max_value=10**11),
)
def test_any_body_and_secret_round_trip(body: bytes, secret: str | bytes, timestamp: int) -> None:
    headers = {SIGNATURE_HEADER: signature_header(secret, timestamp, body)}
    assert verify(secret, headers, body, now=timestamp) == timestamp
    assert verify([OTHER_SECRET, secret], headers, body, now=timestamp) == timestamp


@settings(max_examples=200, deadline=None)
@given(body=st.binary(min_size=1, max_size=2048), data=st.data())
def test_any_single_byte_change_fails(body: bytes, data: st.DataObject) -> None:
    headers = {SIGNATURE_HEADER: signature_header(SECRET, NOW, body)}
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    changed = bytearray(body)
    changed[index] ^= flip
    with pytest.raises(SignatureMismatchError):
        verify(SECRET, headers, bytes(changed), now=NOW)


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=256), extra=st.binary(min_size=1, max_size=8))
def test_appending_or_cutting_bytes_fails(body: bytes, extra: bytes) -> None:
    headers = {SIGNATURE_HEADER: signature_header(SECRET, NOW, body + extra)}
    with pytest.raises(SignatureMismatchError):
        verify(SECRET, headers, body, now=NOW)


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


# --------------------------------------------------------------------------- escalation


def test_a_failed_delivery_escalates_to_the_coordinator_with_a_stable_id() -> None:
    event = offer()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    escalation = escalation_for(event, provider_id=event.provider_id, jurisdiction="NL", now=now)

    assert escalation.level == COORDINATOR_LEVEL == 2
    assert escalation.reason is EscalationReason.DELIVERY_FAILED
    assert (escalation.survivor_id, escalation.referral_id) == (
        event.survivor_id,
        event.referral_id,
    )
    assert escalation.provider_id == event.provider_id
    assert escalation.category is ServiceCategory.HOUSING
    assert escalation.jurisdiction == "NL"
    assert escalation_id("d-1") == escalation_id("d-1") != escalation_id("d-2")
    assert ESCALATION_ID_NAMESPACE != LADDER_NAMESPACE  # never mistaken for the ladder's copy


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
    jurisdiction: NL
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
                "jurisdiction": "BE",
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
        ("secrets: short-secret", "16 characters"),
        ("secrets: []", "secrets"),
        ("jurisdiction: Netherlands", "jurisdiction"),
        ("colour: blue", "colour"),
    ],
)
def test_an_invalid_entry_is_named_without_its_values(
    tmp_path: Path, entry: str, problem: str
) -> None:
    fields = {
        "url": "url: https://provider.example/hook",
        "secrets": f"secrets: {SECRET}",
        "jurisdiction": "jurisdiction: NL",
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
    with pytest.raises(WebhookConfigError, match="repeated key"):
        load_providers(repeated)
    leaky = write(tmp_path, f"providers: [{SECRET}\n", "broken.yaml")
    with pytest.raises(WebhookConfigError, match="line") as caught:
        load_providers(leaky)
    assert SECRET not in str(caught.value)
    with pytest.raises(WebhookConfigError, match="JSON"):
        load_providers(write(tmp_path, '{"providers": ', "broken.json"))
    with pytest.raises(WebhookConfigError, match="providers"):
        load_providers(write(tmp_path, "providers: {}\n", "empty.yaml"))


def test_the_command_checks_a_file_without_printing_urls_or_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"providers:\n  {PROVIDER}:\n    url: https://provider.example/hook\n"
        f"    secrets: [{SECRET}, {OTHER_SECRET}]\n    jurisdiction: NL\n",
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
