"""Sealing for one provider: HPKE (RFC 9180) to the provider's own X25519 public key.

What a provider is disclosed (:mod:`processors.disclosure`) is sealed by
the platform to a public key the provider sent with its request, whose
private half never leaves the provider (the SDK makes one per client, in
memory, or loads one from an owner-only file). So only that provider can
open it: not another provider, not a proxy or gateway that terminates
TLS and logs bodies, not a copy of the answer found later.

The construction is ``cryptography``'s HPKE in base mode, suite
DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM (the same suite as
RFC 9180's test vectors, mode 0). The ``info`` input binds the ciphertext
to the survivor, the referral and the provider (:class:`DisclosureContext`):
a disclosure moved to another referral or passed off as another
provider's does not open. Nothing here is ours beyond choosing ``info``.

Wire form: ``enc (32 bytes) || AES-256-GCM ciphertext || tag``, as
``Suite.encrypt`` returns it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from streams.sealing import SealingError, UnopenableError

__all__ = [
    "PUBLIC_KEY_BYTES",
    "SUITE_NAME",
    "DisclosureContext",
    "ProviderKey",
    "open_disclosure",
    "public_key_from_b64",
    "seal_disclosure",
]

PUBLIC_KEY_BYTES = 32
SUITE_NAME = "HPKE-base/DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM"
"""How the answer names the construction, so a client can refuse one it does not expect."""

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_INFO_VERSION = "safepassage.disclosure.v1"


@dataclass(frozen=True)
class DisclosureContext:
    """Whose data, for which referral, to which provider: what a disclosure is bound to."""

    survivor_id: UUID
    referral_id: UUID
    provider_id: UUID

    def info(self) -> bytes:
        """Canonical bytes (sorted JSON) for HPKE's ``info``."""
        return json.dumps(
            {
                "v": _INFO_VERSION,
                "suite": SUITE_NAME,
                "survivor_id": str(self.survivor_id),
                "referral_id": str(self.referral_id),
                "provider_id": str(self.provider_id),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()


def public_key_from_b64(text: str) -> X25519PublicKey:
    """A raw 32-byte X25519 public key from base64; :class:`SealingError` if it is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SealingError("the public key is not base64") from None
    if len(raw) != PUBLIC_KEY_BYTES:
        raise SealingError(f"an X25519 public key is {PUBLIC_KEY_BYTES} bytes")
    return X25519PublicKey.from_public_bytes(raw)


def seal_disclosure(
    public_key: X25519PublicKey, plaintext: bytes, context: DisclosureContext
) -> bytes:
    """``plaintext`` sealed so that only the holder of ``public_key``'s private half opens it."""
    return _SUITE.encrypt(plaintext, public_key, info=context.info())


def open_disclosure(
    private_key: X25519PrivateKey, sealed: bytes, context: DisclosureContext
) -> bytes:
    """The plaintext; :class:`UnopenableError` for another key or context, or altered bytes."""
    try:
        return _SUITE.decrypt(sealed, private_key, info=context.info())
    except (InvalidTag, ValueError):
        raise UnopenableError("the disclosure does not open with this key and context") from None


class ProviderKey:
    """A provider's X25519 key pair for disclosures; ``repr`` never shows the private key."""

    def __init__(self, private_key: X25519PrivateKey) -> None:
        self._private = private_key

    def __repr__(self) -> str:
        return f"ProviderKey(public={self.public_b64()!r})"

    @classmethod
    def generate(cls) -> ProviderKey:
        """A fresh key pair (kept in memory only, unless :meth:`save`\\ d)."""
        return cls(X25519PrivateKey.generate())

    @property
    def private_key(self) -> X25519PrivateKey:
        return self._private

    def public_b64(self) -> str:
        """The public key to send with a disclosure request: base64 of its 32 raw bytes."""
        raw = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode()

    def open(self, sealed: bytes, context: DisclosureContext) -> bytes:
        """Open a disclosure sealed to this key (:func:`open_disclosure`)."""
        return open_disclosure(self._private, sealed, context)

    def save(self, path: Path) -> None:
        """Write the private key as PKCS#8 PEM, readable by its owner only (0600), never over."""
        pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)

    @classmethod
    def load(cls, path: Path) -> ProviderKey:
        """Read a key :meth:`save` wrote; refuses a file others may read (like ssh does)."""
        if path.stat().st_mode & 0o077:
            raise SealingError(f"{path} may be read by others: chmod 600 it")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, X25519PrivateKey):
            raise SealingError(f"{path} does not hold an X25519 private key")
        return cls(key)
