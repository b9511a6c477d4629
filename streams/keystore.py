"""Key-encryption keys: the port a KMS or Vault Transit implements, and a local file keystore.

Data keys (:class:`streams.sealing.DataKey`) never rest in clear: they are
kept wrapped by a key-encryption key (KEK) that stays inside the keystore,
the way AWS KMS ``Encrypt``/``Decrypt``, Google Cloud KMS or Vault Transit
``encrypt``/``decrypt`` work. Each wrap is bound to an encryption context
(the survivor and the data key id, like KMS's ``EncryptionContext`` or
Vault's ``context``): a wrapped key copied to another survivor does not
unwrap.

:class:`Keystore` is the whole port (docs/keys.md says how a KMS or Vault
adapter maps onto it). :class:`FileKeystore` is for ``make run`` and tests:
256-bit KEKs in owner-only files, wrapping with ``cryptography``'s AES-GCM
and the context as associated data. :class:`MemoryKeystore` is the test
double, shaped like a remote service (the wrapped blob is an opaque handle,
the key material never leaves it); both pass the same contract tests
(``tests/unit/test_keystore.py``).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streams.exceptions import StreamsError

__all__ = [
    "FileKeystore",
    "Keystore",
    "KeystoreError",
    "MemoryKeystore",
    "UnwrapError",
    "WrappedKey",
    "encryption_context",
]

_NONCE_BYTES = 12
_KEK_FILE = re.compile(r"^kek-(\d{4,})\.key$")


class KeystoreError(StreamsError):
    """The keystore is unusable (missing, unsafe permissions, unknown key-encryption key)."""


class UnwrapError(KeystoreError):
    """A wrapped key does not unwrap: another context, altered, or its KEK is gone."""


@dataclass(frozen=True)
class WrappedKey:
    """A data key as it may rest anywhere: which KEK wrapped it, and the opaque blob."""

    kek_id: str
    blob: bytes


def encryption_context(survivor_id: object, key_id: str) -> Mapping[str, str]:
    """The context every data key of the platform is wrapped under."""
    return {"survivor_id": str(survivor_id), "key_id": key_id}


def _context_bytes(context: Mapping[str, str]) -> bytes:
    return json.dumps(dict(context), sort_keys=True, separators=(",", ":")).encode()


class Keystore(Protocol):
    """What the platform asks of a KMS: wrap and unwrap under a context, and say which KEK."""

    @property
    def current_kek_id(self) -> str:
        """The KEK new wraps use."""
        ...

    def wrap(self, plaintext: bytes, context: Mapping[str, str]) -> WrappedKey:
        """``plaintext`` (a data key) wrapped by the current KEK, bound to ``context``."""
        ...

    def unwrap(self, wrapped: WrappedKey, context: Mapping[str, str]) -> bytes:
        """The data key; :class:`UnwrapError` unless ``wrapped`` was wrapped under ``context``."""
        ...


class FileKeystore:
    """KEKs as owner-only files ``kek-NNNN.key`` (32 random bytes each) in one directory.

    The highest number is current; older ones stay to unwrap what they
    wrapped until every data key is re-wrapped (:meth:`rotate` makes a new
    one). A directory or file that anyone but the owner may read is refused,
    as ``ssh`` refuses a readable private key.
    """

    def __init__(self, directory: Path, *, create: bool = True) -> None:
        self.directory = directory
        if create and not directory.exists():
            directory.mkdir(parents=True, mode=0o700)
        self._keks = self._load()
        if not self._keks:
            if not create:
                raise KeystoreError(f"no key-encryption key in {directory}")
            self.rotate()

    def _load(self) -> dict[str, bytes]:
        if not self.directory.is_dir():
            raise KeystoreError(f"keystore directory {self.directory} does not exist")
        _owner_only(self.directory, 0o077)
        keks: dict[str, bytes] = {}
        for path in sorted(self.directory.iterdir()):
            match = _KEK_FILE.match(path.name)
            if match is None:
                continue
            _owner_only(path, 0o077)
            material = path.read_bytes()
            if len(material) != 32:
                raise KeystoreError(f"{path} is not a 256-bit key")
            keks[f"kek-{match.group(1)}"] = material
        return keks

    @property
    def current_kek_id(self) -> str:
        return max(self._keks, key=lambda k: int(k.removeprefix("kek-")))

    def rotate(self) -> str:
        """Make a new current KEK (the old ones keep unwrapping); its id."""
        number = max((int(k.removeprefix("kek-")) for k in self._keks), default=0) + 1
        kek_id = f"kek-{number:04d}"
        path = self.directory / f"{kek_id}.key"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(AESGCM.generate_key(bit_length=256))
        self._keks = self._load()
        return kek_id

    def wrap(self, plaintext: bytes, context: Mapping[str, str]) -> WrappedKey:
        kek_id = self.current_kek_id
        nonce = os.urandom(_NONCE_BYTES)
        body = AESGCM(self._keks[kek_id]).encrypt(nonce, plaintext, _context_bytes(context))
        return WrappedKey(kek_id, nonce + body)

    def unwrap(self, wrapped: WrappedKey, context: Mapping[str, str]) -> bytes:
        kek = self._keks.get(wrapped.kek_id)
        if kek is None:
            raise UnwrapError(f"key-encryption key {wrapped.kek_id} is not in this keystore")
        nonce, body = wrapped.blob[:_NONCE_BYTES], wrapped.blob[_NONCE_BYTES:]
        try:
            return AESGCM(kek).decrypt(nonce, body, _context_bytes(context))
        except (InvalidTag, ValueError):
            raise UnwrapError("the wrapped key does not unwrap under this context") from None


def _owner_only(path: Path, forbidden: int) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & forbidden:
        raise KeystoreError(f"{path} is readable by others (mode {mode:o}); chmod go-rwx it")


class MemoryKeystore:
    """The test double: a keystore shaped like a remote KMS, held in memory.

    The wrapped blob is a random handle; the key material and its context
    stay inside, as they stay inside a KMS. :meth:`destroy_kek` imitates
    scheduling a KMS key for deletion.
    """

    def __init__(self, kek_id: str = "memory-kek-1") -> None:
        self._kek_id = kek_id
        self._wrapped: dict[tuple[str, bytes], tuple[bytes, bytes]] = {}
        self._destroyed: set[str] = set()

    @property
    def current_kek_id(self) -> str:
        return self._kek_id

    def wrap(self, plaintext: bytes, context: Mapping[str, str]) -> WrappedKey:
        handle = os.urandom(16)
        self._wrapped[self._kek_id, handle] = (bytes(plaintext), _context_bytes(context))
        return WrappedKey(self._kek_id, handle)

    def unwrap(self, wrapped: WrappedKey, context: Mapping[str, str]) -> bytes:
        if wrapped.kek_id in self._destroyed:
            raise UnwrapError(f"key-encryption key {wrapped.kek_id} was destroyed")
        found = self._wrapped.get((wrapped.kek_id, wrapped.blob))
        if found is None or found[1] != _context_bytes(context):
            raise UnwrapError("the wrapped key does not unwrap under this context")
        return found[0]

    def destroy_kek(self, kek_id: str) -> None:
        """Everything wrapped by ``kek_id`` stops unwrapping."""
        self._destroyed.add(kek_id)
