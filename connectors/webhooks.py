"""Signed webhooks: what a provider receives instead of reading Kafka, and how it checks it.

A provider that does not run a Kafka consumer gets each offer and
cancellation addressed to it as an HTTP ``POST`` with a JSON body (see
:func:`payload`). Anyone can POST to a public URL, so every request is
signed with a secret shared between SafePassage and that provider only:

* signed content: ``f"{timestamp}.".encode() + body``, where ``timestamp``
  is Unix seconds as a decimal string and ``body`` the exact bytes sent;
* signature: HMAC-SHA256 of the signed content with the secret's UTF-8
  bytes as key, lower-case hex;
* header ``SafePassage-Signature: t=<timestamp>,v1=<hex>[,v1=<hex>...]``,
  one ``v1`` per configured secret, so a provider can rotate its secret
  without a moment in which valid requests fail.

Putting the timestamp under the signature stops replays outside a short
window (:func:`verify` refuses stale and future timestamps). The delivery
id and event type travel in the signed body as well as in headers; the
body is what a provider should trust. :func:`verify` is the reference
check, written so that a provider can import it; ``docs/webhooks.md``
states the same scheme for other languages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import typing
from collections.abc import Mapping, Sequence
from uuid import NAMESPACE_URL, uuid5

from pydantic import SecretStr

from connectors.exceptions import (
    FutureTimestampError,
    MalformedSignatureError,
    MissingSignatureError,
    SignatureError,
    SignatureMismatchError,
    StaleTimestampError,
)
from schemas.models import ReferralCancelled, ReferralOffered
from schemas.types import Sealed

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_TOLERANCE_S",
    "DELIVERY_HEADER",
    "DELIVERY_ID_NAMESPACE",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_SCHEME",
    "FutureTimestampError",
    "MalformedSignatureError",
    "MissingSignatureError",
    "Secret",
    "SignatureError",
    "SignatureMismatchError",
    "StaleTimestampError",
    "WebhookEvent",
    "delivery_id",
    "payload",
    "sign",
    "signature_header",
    "signed_headers",
    "verify",
]

SIGNATURE_HEADER = "SafePassage-Signature"
DELIVERY_HEADER = "SafePassage-Delivery"
EVENT_TYPE_HEADER = "SafePassage-Event-Type"
CONTENT_TYPE = "application/json"
SIGNATURE_SCHEME = "v1"
"""HMAC-SHA256 over ``<timestamp>.<body>``; other schemes in the header are ignored."""

DEFAULT_TOLERANCE_S = 300
"""How far a signed timestamp may lie from the verifier's clock (either way)."""

DELIVERY_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:safepassage:webhooks:delivery")
"""UUIDv5 namespace of delivery ids (derived from the CloudEvents source and id)."""

MAX_HEADER_CHARS = 4096
"""Longer signature headers are refused before any parsing (a cheap guard)."""
MAX_SIGNATURES = 8
"""More ``v1`` values than any rotation needs is a garbled header, not a rotation."""

_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_HEX_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")

Secret = str | bytes | SecretStr
"""A shared secret as configuration hands it over; its UTF-8 bytes are the HMAC key."""

WebhookEvent = ReferralOffered | ReferralCancelled
"""What is delivered by webhook: the events of the referral topics."""


def _key(secret: Secret) -> bytes:
    """The HMAC key of a secret: its UTF-8 bytes (bytes are used as they are)."""
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("a webhook secret must not be empty")
    return key


def _secrets(secrets: Secret | Sequence[Secret]) -> list[bytes]:
    """One secret or several (rotation) as HMAC keys; at least one."""
    if isinstance(secrets, str | bytes | SecretStr):
        return [_key(secrets)]
    keys = [_key(secret) for secret in secrets]
    if not keys:
        raise ValueError("at least one webhook secret is needed")
    return keys


def sign(secret: Secret, timestamp: int, body: bytes) -> str:
    """The ``v1`` signature (lower-case hex) of ``body`` sent at ``timestamp``."""
    if timestamp < 0:
        raise ValueError("timestamp must be Unix seconds, not negative")
    signed = f"{timestamp}.".encode("ascii") + body
    return hmac.new(_key(secret), signed, hashlib.sha256).hexdigest()


def signature_header(secrets: Secret | Sequence[Secret], timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex>...``: one ``v1`` per secret, in the order given."""
    parts = [f"t={timestamp}"]
    parts.extend(f"{SIGNATURE_SCHEME}={sign(key, timestamp, body)}" for key in _secrets(secrets))
    return ",".join(parts)


def signed_headers(
    secrets: Secret | Sequence[Secret],
    body: bytes,
    *,
    delivery: str,
    event_type: str,
    timestamp: int,
) -> dict[str, str]:
    """Every header of one delivery attempt (a fresh ``timestamp`` for each attempt)."""
    return {
        SIGNATURE_HEADER: signature_header(secrets, timestamp, body),
        DELIVERY_HEADER: delivery,
        EVENT_TYPE_HEADER: event_type,
        "Content-Type": CONTENT_TYPE,
    }


# --------------------------------------------------------------------------- verification


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, case-insensitively (HTTP names are), from any mapping.

    Framework header objects (aiohttp, httpx, Starlette) already look up
    case-insensitively; a plain ``dict`` is scanned.
    """
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def _parse(header: str) -> tuple[int, list[str]]:
    """The timestamp and ``v1`` signatures of a header; :class:`MalformedSignatureError` if garbled.

    Elements are ``key=value`` separated by commas (spaces around them are
    tolerated); exactly one ``t``; one or more ``v1``; elements of other
    schemes are skipped so the header can grow.
    """
    if len(header) > MAX_HEADER_CHARS:
        raise MalformedSignatureError(
            f"{SIGNATURE_HEADER} is longer than {MAX_HEADER_CHARS} characters"
        )
    timestamps: list[str] = []
    signatures: list[str] = []
    for element in header.split(","):
        name, sep, value = element.strip().partition("=")
        if not sep or not name:
            raise MalformedSignatureError(
                f"{SIGNATURE_HEADER} has an element that is not key=value"
            )
        if name == "t":
            timestamps.append(value)
        elif name == SIGNATURE_SCHEME:
            if not _HEX_SHA256.fullmatch(value):
                raise MalformedSignatureError(f"a {SIGNATURE_SCHEME} value is not 64 hex digits")
            signatures.append(value.lower())
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise MalformedSignatureError(f"{SIGNATURE_HEADER} needs exactly one t=<Unix seconds>")
    if not signatures:
        raise MalformedSignatureError(f"{SIGNATURE_HEADER} has no {SIGNATURE_SCHEME} signature")
    if len(signatures) > MAX_SIGNATURES:
        raise MalformedSignatureError(
            f"{SIGNATURE_HEADER} has more than {MAX_SIGNATURES} signatures"
        )
    return int(timestamps[0]), signatures


def verify(
    secrets: Secret | Sequence[Secret],
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> int:
    """Check a received webhook; return its signed timestamp, or raise a :class:`SignatureError`.

    ``secrets`` are the provider's current secret(s): during a rotation pass
    both, the request is genuine if any ``v1`` matches any of them.
    ``body`` must be the raw bytes received, before any JSON parsing.
    ``now`` (Unix seconds) defaults to the local clock. Errors, each its own
    class: :class:`MissingSignatureError`, :class:`MalformedSignatureError`,
    :class:`StaleTimestampError`, :class:`FutureTimestampError` and
    :class:`SignatureMismatchError` (a changed body and a wrong secret cannot be
    told apart, by design). Comparison is constant-time
    (:func:`hmac.compare_digest`).
    """
    if tolerance_s < 0:
        raise ValueError("tolerance_s must not be negative")
    keys = _secrets(secrets)
    header = _header(headers, SIGNATURE_HEADER)
    if header is None or not header.strip():
        raise MissingSignatureError(f"the request has no {SIGNATURE_HEADER} header")
    timestamp, received = _parse(header)
    moment = time.time() if now is None else now
    if timestamp < moment - tolerance_s:
        raise StaleTimestampError(
            f"signed {moment - timestamp:.0f} s ago, more than the tolerance of {tolerance_s} s"
        )
    if timestamp > moment + tolerance_s:
        raise FutureTimestampError(
            f"signed {timestamp - moment:.0f} s in the future, more than the tolerance of "
            f"{tolerance_s} s (check the clocks)"
        )
    expected = [sign(key, timestamp, body) for key in keys]
    matched = False
    for candidate in received:
        for wanted in expected:
            # No early exit: the time taken does not say which pair matched.
            matched |= hmac.compare_digest(candidate, wanted)
    if not matched:
        raise SignatureMismatchError("no signature matches the body with any configured secret")
    return timestamp


# --------------------------------------------------------------------------- body


def delivery_id(ce_source: str, ce_id: str) -> str:
    """The delivery id of the record with these CloudEvents attributes.

    CloudEvents makes ``source`` + ``id`` unique per event, and both are
    kept when a record is re-published or re-read, so a delivery retried
    after a crash carries the same id: providers deduplicate on it.
    """
    if not ce_source or not ce_id:
        raise ValueError("ce_source and ce_id must not be empty")
    return str(uuid5(DELIVERY_ID_NAMESPACE, f"{ce_source}\x00{ce_id}"))


def _sealed_fields(model: type[WebhookEvent]) -> frozenset[str]:
    """Fields whose type admits :class:`~schemas.types.Sealed`: never sent by webhook.

    Decided from the type, not the value, so that even the presence of a
    sealed field (an empty one included) does not leave SafePassage.
    """
    return frozenset(
        name
        for name, field in model.model_fields.items()
        if field.annotation is Sealed or Sealed in typing.get_args(field.annotation)
    )


def payload(event: WebhookEvent, delivery: str) -> bytes:
    """The JSON body delivered for ``event``: its fields minus sealed ones, with envelope.

    ``{"data": {...}, "delivery_id": "...", "event_type": "referral.offered"}``
    with keys sorted and no spaces, so the bytes of a delivery are the same
    on every attempt. The data are pseudonyms, ids, codes and times: no
    personal data travels outside a sealed field, and sealed fields stay out.
    """
    data = event.model_dump(mode="json", exclude=set(_sealed_fields(type(event))))
    document = {"data": data, "delivery_id": delivery, "event_type": event.event_type}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")
