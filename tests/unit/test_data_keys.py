"""Survivors' data keys: made once, kept wrapped, opened by id, gone for good when shredded."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.data_keys import DataKeys, KeyRecord, ShreddedError, UnknownKeyError
from streams.keystore import FileKeystore, MemoryKeystore, UnwrapError, encryption_context
from streams.sealing import SealContext, open_sealed, seal

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
ALICE, BOB = uuid.uuid4(), uuid.uuid4()
AGENCY = "agency:nl-police"


def made(keys: DataKeys, survivor: uuid.UUID) -> KeyRecord:
    """Generate a key and apply its record, as the key service does after publishing it."""
    _, record = keys.generate(survivor, AGENCY, NOW)
    keys.apply(survivor, record.to_bytes())
    return record


def test_a_generated_key_rests_wrapped_and_opens_after_a_restart(tmp_path: Path) -> None:
    keystore = FileKeystore(tmp_path / "keys")
    keys = DataKeys(keystore)
    key, record = keys.generate(ALICE, AGENCY, NOW)
    assert key.material not in record.to_bytes()
    assert base64.b64encode(key.material) not in record.to_bytes()
    assert keys.current(ALICE) is None  # nothing until the record is published and read back
    keys.apply(ALICE, record.to_bytes())

    restarted = DataKeys(FileKeystore(tmp_path / "keys"))
    restarted.apply(ALICE, record.to_bytes())
    assert restarted.current(ALICE) == key
    assert restarted.key(ALICE, record.key_id) == key


def test_values_sealed_under_a_key_open_with_the_key_found_by_their_id() -> None:
    keys = DataKeys(MemoryKeystore())
    made(keys, ALICE)
    key = keys.current(ALICE)
    assert key is not None
    context = SealContext(ALICE, "survivor.identified", "personal_data", "platform")
    sealed = seal(key, b"Hotel Astoria, room 12", context)
    assert open_sealed(keys.key(ALICE, sealed.key_id), sealed, context) == b"Hotel Astoria, room 12"
    with pytest.raises(UnknownKeyError):
        keys.key(ALICE, "another-key")
    with pytest.raises(UnknownKeyError):
        keys.key(BOB, sealed.key_id)


def test_a_record_copied_under_another_survivor_is_refused_and_does_not_unwrap() -> None:
    keys = DataKeys(MemoryKeystore())
    record = made(keys, ALICE)
    with pytest.raises(ValueError, match="another survivor"):
        keys.apply(BOB, record.to_bytes())
    moved = record.model_copy(update={"survivor_id": BOB})
    keys.apply(BOB, moved.to_bytes())
    with pytest.raises(UnwrapError):  # the wrap is bound to Alice's id
        keys.current(BOB)


def test_shredding_one_survivor_leaves_the_others_keys() -> None:
    keys = DataKeys(MemoryKeystore())
    alice, bob = made(keys, ALICE), made(keys, BOB)
    keys.apply(ALICE, None)  # the tombstone
    with pytest.raises(ShreddedError):
        keys.current(ALICE)
    with pytest.raises(ShreddedError):
        keys.key(ALICE, alice.key_id)
    with pytest.raises(ShreddedError, match="new id"):
        keys.generate(ALICE, AGENCY, NOW)
    assert keys.key(BOB, bob.key_id).survivor_id == BOB
    assert len(keys) == 1


@pytest.mark.parametrize(
    "value",
    [b"", b"{}", b"not json", b'{"survivor_id": "x"}'],
)
def test_an_unreadable_record_is_a_value_error(value: bytes) -> None:
    with pytest.raises(ValueError):
        DataKeys(MemoryKeystore()).apply(ALICE, value)


def test_a_record_whose_wrapped_key_is_not_base64_is_refused() -> None:
    record = made(DataKeys(MemoryKeystore()), ALICE)
    broken = json.dumps(record.model_dump(mode="json") | {"wrapped": "not base64!"})
    with pytest.raises(ValueError):
        KeyRecord.from_bytes(broken.encode())


def test_the_first_key_in_the_log_wins_and_a_rewrap_of_it_still_counts(tmp_path: Path) -> None:
    keystore = FileKeystore(tmp_path / "keys")
    keys = DataKeys(keystore)
    first, first_record = keys.generate(ALICE, AGENCY, NOW)
    _, rival_record = keys.generate(ALICE, "agency:other", NOW)  # another intake, same moment
    keys.apply(ALICE, first_record.to_bytes())
    keys.apply(ALICE, rival_record.to_bytes())
    assert keys.current(ALICE) == first
    assert keys.record(ALICE) == first_record
    keystore.rotate()
    rewrapped = keystore.wrap(first.material, encryption_context(ALICE, first.key_id))
    update = first_record.model_copy(
        update={"kek_id": rewrapped.kek_id, "wrapped": base64.b64encode(rewrapped.blob).decode()}
    )
    keys.apply(ALICE, update.to_bytes())
    assert keys.record(ALICE) == update and keys.current(ALICE) == first


def test_nothing_brings_a_shredded_key_back() -> None:
    keys = DataKeys(MemoryKeystore())
    record = made(keys, ALICE)
    keys.apply(ALICE, None)
    keys.apply(ALICE, record.to_bytes())  # a late copy of the record
    with pytest.raises(ShreddedError):
        keys.current(ALICE)
