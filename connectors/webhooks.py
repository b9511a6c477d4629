"""Signed webhooks: what a provider receives instead of reading Kafka, and how it checks it.

Each offer and cancellation addressed to a provider without a Kafka consumer
is POSTed as JSON (:func:`payload`), signed as the Standard Webhooks
specification says with its reference library (``standardwebhooks``), under
a secret shared with that provider only; a provider checks it with that
library in its own language and needs no code of ours. ``webhook-id`` is
the delivery id (:func:`delivery_id`, the same on every attempt, so
providers deduplicate on it); one ``v1`` signature per configured secret
lets a provider rotate without a moment in which valid requests fail.
:func:`verify` is the library check with SafePassage's error classes on
top, for providers in Python. docs/webhooks.md is the contract.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from secrets import token_bytes
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError

from connectors.exceptions import (
    FutureTimestampError,
    MalformedSignatureError,
    MissingSignatureError,
    SignatureMismatchError,
    StaleTimestampError,
)
from schemas.models import ReferralCancelled, ReferralOffered
from streams.cloudevents import sealed_fields

__all__ = [
    "CONTENT_TYPE",
    "DELIVERY_ID_NAMESPACE",
    "EVENT_TYPE_HEADER",
    "ID_HEADER",
    "MAX_SIGNATURES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TOLERANCE_S",
    "Secret",
    "WebhookEvent",
    "check_secret",
    "delivery_id",
    "new_secret",
    "payload",
    "signed_headers",
    "verify",
]

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
EVENT_TYPE_HEADER = "SafePassage-Event-Type"
"""A convenience for routing; the signed body says the same."""
CONTENT_TYPE = "application/json"

TOLERANCE_S = 300
"""How far the signed timestamp may lie from the verifier's clock, either way (the library's)."""

DELIVERY_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:safepassage:webhooks:delivery")
"""UUIDv5 namespace of delivery ids (derived from the CloudEvents source and id)."""

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = (24, 64)
"""Smallest and largest secret, in random bytes (the specification's bounds)."""
MAX_HEADER_CHARS = 4096
"""Longer headers are refused before any parsing (a cheap guard)."""
MAX_SIGNATURES = 8
"""More signatures than any rotation needs is a garbled header, not a rotation."""

_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_VERSIONED = re.compile(r"^(v[0-9a-z]+),([A-Za-z0-9+/]+={0,2})$")
_SIGNED_BYTES = 32  # HMAC-SHA256

Secret = str | SecretStr
"""A shared secret as configuration hands it over: ``whsec_<base64>``."""

WebhookEvent = ReferralOffered | ReferralCancelled
"""What is delivered by webhook: the events of the referral topics."""


def new_secret() -> str:
    """A fresh secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(32)).decode("ascii")


def check_secret(secret: str) -> str:
    """``secret`` if it is a Standard Webhooks secret; a ``ValueError`` that never shows it.

    The library strips ``whsec_`` and decodes the rest leniently: characters
    outside base64 are dropped, so a mistyped secret would silently become
    another key. Here the whole rest must be base64 of 24 to 64 bytes.
    """
    low, high = SECRET_BYTES
    shape = f"a secret must be {SECRET_PREFIX} and the base64 of {low} to {high} random bytes"
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(shape)
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(shape) from None
    if not low <= len(key) <= high:
        raise ValueError(shape)
    return secret


def _webhooks(secrets: Secret | Sequence[Secret]) -> list[Webhook]:
    """The library's signer-verifier for each secret (rotation: several); at least one."""
    given = [secrets] if isinstance(secrets, str | SecretStr) else list(secrets)
    if not given:
        raise ValueError("at least one webhook secret is needed")
    return [
        Webhook(check_secret(s.get_secret_value() if isinstance(s, SecretStr) else s))
        for s in given
    ]


def signed_headers(
    secrets: Secret | Sequence[Secret],
    body: bytes,
    *,
    delivery: str,
    event_type: str,
    timestamp: int,
) -> dict[str, str]:
    """Every header of one delivery attempt (a fresh ``timestamp`` for each attempt).

    ``body`` is UTF-8 (the library signs text); one signature per secret.
    """
    if timestamp < 0:
        raise ValueError("timestamp must be Unix seconds, not negative")
    moment = datetime.fromtimestamp(timestamp, UTC)
    text = body.decode("utf-8")
    signatures = [hook.sign(delivery, moment, text) for hook in _webhooks(secrets)]
    return {
        ID_HEADER: delivery,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(signatures),
        EVENT_TYPE_HEADER: event_type,
        "Content-Type": CONTENT_TYPE,
    }


# --------------------------------------------------------------------------- verification


def _received(headers: Mapping[str, str]) -> tuple[dict[str, str], int]:
    """The three headers, lower-cased and checked for shape, and the timestamp.

    The library would raise a bare ``ValueError`` or ``binascii.Error`` on a
    signature that is not ``<version>,<base64>``, so the shape is checked here
    first. Spaces around signatures are tolerated. Signatures of other
    versions (``v1a``) are skipped, so that the header can grow.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    wanted = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
    missing = [name for name in wanted if not (lowered.get(name) or "").strip()]
    if missing:
        raise MissingSignatureError(f"the request has no {', '.join(missing)} header")
    for name in wanted:
        if len(lowered[name]) > MAX_HEADER_CHARS:
            raise MalformedSignatureError(f"{name} is longer than {MAX_HEADER_CHARS} characters")
    timestamp = lowered[TIMESTAMP_HEADER].strip()
    if not _TIMESTAMP.fullmatch(timestamp):
        raise MalformedSignatureError(f"{TIMESTAMP_HEADER} is not Unix seconds")
    signatures = lowered[SIGNATURE_HEADER].split()
    if len(signatures) > MAX_SIGNATURES:
        raise MalformedSignatureError(
            f"{SIGNATURE_HEADER} has more than {MAX_SIGNATURES} signatures"
        )
    versions = []
    for signature in signatures:
        match = _VERSIONED.fullmatch(signature)
        if match is None:
            raise MalformedSignatureError(f"a {SIGNATURE_HEADER} element is not <version>,<base64>")
        versions.append(match[1])
        if match[1] == "v1" and not _is_hmac(match[2]):
            raise MalformedSignatureError("a v1 signature is not the base64 of 32 bytes")
    if "v1" not in versions:
        raise MalformedSignatureError(f"{SIGNATURE_HEADER} has no v1 signature")
    checked = {
        ID_HEADER: lowered[ID_HEADER],
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: " ".join(signatures),
    }
    return checked, int(timestamp)


def _is_hmac(encoded: str) -> bool:
    try:
        return len(base64.b64decode(encoded, validate=True)) == _SIGNED_BYTES
    except (binascii.Error, ValueError):
        return False


def verify(secrets: Secret | Sequence[Secret], headers: Mapping[str, str], body: bytes) -> Any:
    """Check a received webhook with the Standard Webhooks library; its parsed JSON body.

    ``secrets`` are the provider's current secret(s): during a rotation pass
    both, the request is genuine if any signature matches any of them.
    ``body`` must be the raw bytes received, before any JSON parsing. Each
    failure is its own :class:`~connectors.exceptions.SignatureError`; a
    changed body and a wrong secret cannot be told apart, by design.
    """
    hooks = _webhooks(secrets)
    checked, timestamp = _received(headers)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureMismatchError("the body is not UTF-8, so not what was signed") from None
    for hook in hooks:
        try:
            return hook.verify(text, checked)
        except WebhookVerificationError:
            continue
    moment = time.time()
    if timestamp < moment - TOLERANCE_S:
        raise StaleTimestampError(
            f"signed {moment - timestamp:.0f} s ago, more than the tolerance of {TOLERANCE_S} s"
        )
    if timestamp > moment + TOLERANCE_S:
        raise FutureTimestampError(
            f"signed {timestamp - moment:.0f} s in the future, more than the tolerance of "
            f"{TOLERANCE_S} s (check the clocks)"
        )
    raise SignatureMismatchError("no signature matches the body with any configured secret")


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


def payload(event: WebhookEvent, delivery: str) -> bytes:
    """The JSON body delivered for ``event``: its fields minus sealed ones, with envelope.

    ``{"data": {...}, "delivery_id": "...", "event_type": "referral.offered"}``
    with keys sorted and no spaces, so the bytes of a delivery are the same
    on every attempt. The data are pseudonyms, ids, codes and times: no
    personal data travels outside a sealed field, and sealed fields stay out
    (decided by type: not even an empty one leaves SafePassage).
    """
    data = event.model_dump(mode="json", exclude=set(sealed_fields(event.event_type)))
    document = {"data": data, "delivery_id": delivery, "event_type": event.event_type}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")
