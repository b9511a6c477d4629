"""Survivors' data keys, kept only wrapped: the core of the platform's key service.

One data key per survivor for the life of their case. The first record of
a survivor in the log decides it: a later record counts only if it names
the same key (a re-wrap under a new KEK), so two services racing to make a
key agree on the winner, and no value sealed under it is ever orphaned
(the loser reads the log back and hands out the winner). The record holds the key
wrapped by a KEK (:mod:`streams.keystore`) under the encryption context of
that survivor and key id, so it may rest on a topic and in memory; the
clear key exists only for the moment of a seal or an open.

Crypto-shredding is forgetting: a tombstone for the survivor removes the
record here and, once the log is compacted, from the topic; every copy of
every value sealed under that key becomes noise. :class:`DataKeys` is
pure (no Kafka): the key service applies the topic's records to it and
publishes what :meth:`DataKeys.generate` returns before handing a key out.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationError

from schemas.types import Identifier, UtcDatetime
from streams.exceptions import StreamsError
from streams.keystore import Keystore, WrappedKey, encryption_context
from streams.sealing import DataKey

__all__ = ["DataKeys", "KeyRecord", "ShreddedError", "UnknownKeyError"]


class UnknownKeyError(StreamsError):
    """No data key of that id for that survivor: never made, or shredded."""


class ShreddedError(UnknownKeyError):
    """The survivor's key was destroyed (erasure): what it sealed cannot be opened by anyone."""


class KeyRecord(BaseModel):
    """A survivor's data key as the key topic keeps it: wrapped, never in clear."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    survivor_id: UUID
    agency_id: Identifier
    """The agency that asked for the key first (the survivor's owner in the making)."""
    key_id: str
    kek_id: str
    wrapped: str
    """The wrapped key, standard base64."""
    created_at: UtcDatetime

    def to_bytes(self) -> bytes:
        """The record's value on the key topic (JSON)."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, value: bytes) -> KeyRecord:
        """Inverse of :meth:`to_bytes`; :class:`ValueError` for anything else."""
        try:
            record = cls.model_validate_json(value)
            base64.b64decode(record.wrapped, validate=True)
        except (ValidationError, binascii.Error) as exc:
            raise ValueError("not a key record") from exc
        return record

    def wrapped_key(self) -> WrappedKey:
        return WrappedKey(self.kek_id, base64.b64decode(self.wrapped))


class DataKeys:
    """The survivors' wrapped data keys as read from the key topic, and the keystore to open them.

    ``shredded`` remembers survivors whose tombstone was seen, so that a
    key is never made again for someone erased while this copy runs (a
    new case for the same person comes with a new pseudonym).
    """

    def __init__(self, keystore: Keystore) -> None:
        self.keystore = keystore
        self._records: dict[UUID, KeyRecord] = {}
        self._shredded: set[UUID] = set()

    def __len__(self) -> int:
        return len(self._records)

    def apply(self, survivor_id: UUID, value: bytes | None) -> None:
        """One record of the key topic (None: a tombstone); :class:`ValueError` if unreadable."""
        if value is None:
            self._records.pop(survivor_id, None)
            self._shredded.add(survivor_id)
            return
        record = KeyRecord.from_bytes(value)
        if record.survivor_id != survivor_id:
            raise ValueError("a key record under another survivor's key")
        if survivor_id in self._shredded:
            return  # erased: nothing brings the key back
        first = self._records.get(survivor_id)
        if first is None or first.key_id == record.key_id:
            self._records[survivor_id] = record

    def record(self, survivor_id: UUID) -> KeyRecord | None:
        return self._records.get(survivor_id)

    def generate(
        self, survivor_id: UUID, agency_id: str, now: datetime
    ) -> tuple[DataKey, KeyRecord]:
        """A new key for a survivor who has none (``GenerateDataKey``); publish the record first.

        :class:`ShreddedError` for a survivor erased before; a survivor who
        has a key keeps it (:meth:`current`).
        """
        if survivor_id in self._shredded:
            raise ShreddedError("this survivor's data was erased; a new case needs a new id")
        key = DataKey.generate(str(uuid.uuid4()), survivor_id)
        wrapped = self.keystore.wrap(key.material, encryption_context(survivor_id, key.key_id))
        record = KeyRecord(
            survivor_id=survivor_id,
            agency_id=agency_id,
            key_id=key.key_id,
            kek_id=wrapped.kek_id,
            wrapped=base64.b64encode(wrapped.blob).decode(),
            created_at=now,
        )
        return key, record

    def current(self, survivor_id: UUID) -> DataKey | None:
        """The survivor's key in clear, or None before the first; :class:`ShreddedError` after."""
        record = self._records.get(survivor_id)
        if record is None:
            if survivor_id in self._shredded:
                raise ShreddedError("this survivor's data key was destroyed")
            return None
        return self._open(record)

    def key(self, survivor_id: UUID, key_id: str) -> DataKey:
        """The key that sealed a value (by the id the value names); :class:`UnknownKeyError`."""
        record = self._records.get(survivor_id)
        if record is None or record.key_id != key_id:
            if survivor_id in self._shredded:
                raise ShreddedError("this survivor's data key was destroyed")
            raise UnknownKeyError("no data key of that id for this survivor")
        return self._open(record)

    def _open(self, record: KeyRecord) -> DataKey:
        context = encryption_context(record.survivor_id, record.key_id)
        material = self.keystore.unwrap(record.wrapped_key(), context)
        return DataKey(record.key_id, record.survivor_id, material)
