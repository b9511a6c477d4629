"""Sealed fields: AES-256-GCM under a survivor's data key, bound to where the value belongs.

Envelope encryption (PRIVACY.md): each survivor has data keys
(:class:`DataKey`, 256 random bits) and each key is kept only wrapped by a
key-encryption key (:mod:`streams.keystore`). A field is sealed with
``cryptography``'s AES-GCM, a fresh 96-bit random nonce per seal (well
below the 2^32 seals per key NIST SP 800-38D allows for random nonces), and
associated data naming the survivor, the event type, the field, the key
and the recipient (:class:`SealContext`). Opening under any other context
fails, so a sealed value cannot be moved to another survivor, event or
field, or passed off as sealed for someone else: that is what the
associated data is for, and no part of the construction is ours beyond
choosing what goes in it.

Wire form of :attr:`Sealed.ciphertext`: ``nonce (12 bytes) || ciphertext || tag (16 bytes)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.types import SealAlgorithm, Sealed
from streams.exceptions import StreamsError

__all__ = [
    "KEY_BYTES",
    "NONCE_BYTES",
    "DataKey",
    "SealContext",
    "SealingError",
    "UnopenableError",
    "open_sealed",
    "seal",
]

KEY_BYTES = 32
NONCE_BYTES = 12
_TAG_BYTES = 16
_AAD_VERSION = "safepassage.sealed.v1"


class SealingError(StreamsError):
    """A value could not be sealed or opened (the message never carries the value)."""


class UnopenableError(SealingError):
    """A sealed value does not authenticate under this key and context.

    Wrong key, wrong survivor, event, field or recipient, a value altered in
    transit, or clear text labelled as ciphertext: AES-GCM does not say which,
    and neither do we.
    """


@dataclass(frozen=True)
class DataKey:
    """One data key of one survivor: an id that names it on the wire, and 256 secret bits.

    ``repr`` never shows the material, so a key cannot reach a log by accident.
    """

    key_id: str
    survivor_id: UUID
    material: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.material) != KEY_BYTES:
            raise SealingError(f"a data key is {KEY_BYTES} bytes")

    @classmethod
    def generate(cls, key_id: str, survivor_id: UUID) -> DataKey:
        """A fresh key from the operating system's CSPRNG (through ``cryptography``)."""
        return cls(key_id, survivor_id, AESGCM.generate_key(bit_length=KEY_BYTES * 8))


@dataclass(frozen=True)
class SealContext:
    """Where a sealed value belongs: what its associated data binds it to."""

    survivor_id: UUID
    event_type: str
    field: str
    """Path of the field in the event's data, e.g. ``personal_data`` or ``notes``."""
    recipient: str
    """Who may open it: ``platform`` for what agencies seal, or a provider id."""

    def associated_data(self, key_id: str) -> bytes:
        """Canonical bytes (sorted JSON): the same context always gives the same bytes."""
        return json.dumps(
            {
                "v": _AAD_VERSION,
                "alg": SealAlgorithm.AES_256_GCM.value,
                "survivor_id": str(self.survivor_id),
                "event_type": self.event_type,
                "field": self.field,
                "recipient": self.recipient,
                "key_id": key_id,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()


def seal(key: DataKey, plaintext: bytes, context: SealContext) -> Sealed:
    """``plaintext`` sealed under ``key`` for ``context`` (a fresh nonce each time)."""
    if key.survivor_id != context.survivor_id:
        raise SealingError("a survivor's value is sealed under that survivor's own key only")
    nonce = os.urandom(NONCE_BYTES)
    body = AESGCM(key.material).encrypt(nonce, plaintext, context.associated_data(key.key_id))
    return Sealed(
        ciphertext=nonce + body,
        key_id=key.key_id,
        algorithm=SealAlgorithm.AES_256_GCM,
        recipient=context.recipient,
    )


def open_sealed(key: DataKey, sealed: Sealed, context: SealContext) -> bytes:
    """The plaintext of ``sealed``; :class:`UnopenableError` unless it authenticates.

    ``context.recipient`` must be the recipient the value names, and ``key``
    the key it names: a label changed on the wire changes the associated
    data, so the tag check fails as well.
    """
    if sealed.algorithm is not SealAlgorithm.AES_256_GCM:
        raise UnopenableError(f"a value sealed with {sealed.algorithm} cannot be opened here")
    if sealed.key_id != key.key_id or sealed.recipient != context.recipient:
        raise UnopenableError("the value names another key or recipient")
    if len(sealed.ciphertext) < NONCE_BYTES + _TAG_BYTES:
        raise UnopenableError("the value is too short to be sealed")
    nonce, body = sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:]
    try:
        return AESGCM(key.material).decrypt(nonce, body, context.associated_data(key.key_id))
    except InvalidTag:
        raise UnopenableError(
            "the value does not authenticate under this key and context"
        ) from None
