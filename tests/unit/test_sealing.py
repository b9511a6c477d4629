"""Sealed fields: a value opens only under its own key, survivor, event, field and recipient."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.types import SealAlgorithm, Sealed
from streams.sealing import (
    NONCE_BYTES,
    DataKey,
    SealContext,
    SealingError,
    UnopenableError,
    open_sealed,
    seal,
)

SURVIVOR = uuid.UUID("1b8f0a52-7d0e-4f7b-9d55-3c1f7f0e9a10")
KEY = DataKey.generate("dk-1", SURVIVOR)
CONTEXT = SealContext(SURVIVOR, "survivor.identified", "personal_data", "platform")


@given(st.binary(max_size=4096))
def test_what_is_sealed_opens_again(plaintext: bytes) -> None:
    sealed = seal(KEY, plaintext, CONTEXT)
    assert sealed.algorithm is SealAlgorithm.AES_256_GCM
    assert (sealed.key_id, sealed.recipient) == ("dk-1", "platform")
    assert open_sealed(KEY, sealed, CONTEXT) == plaintext


def test_each_seal_has_its_own_nonce_and_the_plaintext_is_not_in_it() -> None:
    canary = b"Maria Popescu +40 712 345 678"
    first, second = seal(KEY, canary, CONTEXT), seal(KEY, canary, CONTEXT)
    assert first.ciphertext[:NONCE_BYTES] != second.ciphertext[:NONCE_BYTES]
    assert canary not in first.ciphertext and b"Maria" not in first.ciphertext


@pytest.mark.parametrize(
    "other",
    [
        replace(CONTEXT, survivor_id=uuid.UUID("00000000-0000-4000-8000-000000000001")),
        replace(CONTEXT, event_type="referral.requested"),
        replace(CONTEXT, field="notes"),
    ],
    ids=["survivor", "event", "field"],
)
def test_a_sealed_value_moved_elsewhere_does_not_open(other: SealContext) -> None:
    sealed = seal(KEY, b"secret", CONTEXT)
    key = replace(KEY, survivor_id=other.survivor_id)  # even with the key's label matching
    with pytest.raises(UnopenableError):
        open_sealed(key, sealed, other)


def test_relabelling_the_recipient_or_the_key_does_not_open() -> None:
    sealed = seal(KEY, b"secret", CONTEXT)
    relabelled = sealed.model_copy(update={"recipient": "provider-b"})
    with pytest.raises(UnopenableError):
        open_sealed(KEY, relabelled, replace(CONTEXT, recipient="provider-b"))
    other_key = DataKey("dk-2", SURVIVOR, KEY.material)  # same bits, another name
    with pytest.raises(UnopenableError):
        open_sealed(other_key, sealed.model_copy(update={"key_id": "dk-2"}), CONTEXT)
    with pytest.raises(UnopenableError, match="another key or recipient"):
        open_sealed(DataKey.generate("dk-3", SURVIVOR), sealed, CONTEXT)


@given(st.integers(min_value=0), st.integers(min_value=0, max_value=7))
def test_any_flipped_bit_is_caught(position: int, bit: int) -> None:
    sealed = seal(KEY, b"a sealed address", CONTEXT)
    data = bytearray(sealed.ciphertext)
    data[position % len(data)] ^= 1 << bit
    with pytest.raises(UnopenableError):
        open_sealed(KEY, sealed.model_copy(update={"ciphertext": bytes(data)}), CONTEXT)


@pytest.mark.parametrize(
    "ciphertext", [b"", b"short", b"Maria Popescu, Hotel Astoria room 12, +40712345678"]
)
def test_clear_text_labelled_as_sealed_is_refused(ciphertext: bytes) -> None:
    forged = Sealed(
        ciphertext=ciphertext,
        key_id="dk-1",
        algorithm=SealAlgorithm.AES_256_GCM,
        recipient="platform",
    )
    with pytest.raises(UnopenableError) as caught:
        open_sealed(KEY, forged, CONTEXT)
    assert b"Maria" not in str(caught.value).encode()  # the error never quotes the value


def test_another_algorithm_or_another_survivors_key_is_refused() -> None:
    sealed = seal(KEY, b"x", CONTEXT).model_copy(
        update={"algorithm": SealAlgorithm.XCHACHA20_POLY1305}
    )
    with pytest.raises(UnopenableError, match="cannot be opened here"):
        open_sealed(KEY, sealed, CONTEXT)
    with pytest.raises(SealingError, match="own key"):
        seal(DataKey.generate("dk-9", uuid.uuid4()), b"x", CONTEXT)
    with pytest.raises(SealingError, match="32 bytes"):
        DataKey("dk-short", SURVIVOR, b"too short")


def test_a_data_key_never_shows_its_material() -> None:
    assert KEY.material.hex() not in repr(KEY) and "material" not in repr(KEY)
    assert "<sealed>" in repr(seal(KEY, b"x", CONTEXT))
