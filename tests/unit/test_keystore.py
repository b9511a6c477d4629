"""The keystore contract, run by the file keystore and by the test double alike."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.keystore import (
    FileKeystore,
    Keystore,
    KeystoreError,
    MemoryKeystore,
    UnwrapError,
    WrappedKey,
    encryption_context,
)

DATA_KEY = os.urandom(32)
CONTEXT = encryption_context("1b8f0a52-7d0e-4f7b-9d55-3c1f7f0e9a10", "dk-1")


@pytest.fixture(params=["file", "memory"])
def keystore(request: pytest.FixtureRequest, tmp_path: Path) -> Keystore:
    if request.param == "file":
        return FileKeystore(tmp_path / "keys")
    return MemoryKeystore()


def test_a_wrapped_key_unwraps_under_its_context(keystore: Keystore) -> None:
    wrapped = keystore.wrap(DATA_KEY, CONTEXT)
    assert wrapped.kek_id == keystore.current_kek_id
    assert DATA_KEY not in wrapped.blob
    assert keystore.unwrap(wrapped, CONTEXT) == DATA_KEY


@pytest.mark.parametrize(
    "other",
    [
        encryption_context("00000000-0000-4000-8000-000000000001", "dk-1"),
        encryption_context("1b8f0a52-7d0e-4f7b-9d55-3c1f7f0e9a10", "dk-2"),
        {},
    ],
    ids=["survivor", "key-id", "none"],
)
def test_it_does_not_unwrap_under_another_context(
    keystore: Keystore, other: dict[str, str]
) -> None:
    wrapped = keystore.wrap(DATA_KEY, CONTEXT)
    with pytest.raises(UnwrapError):
        keystore.unwrap(wrapped, other)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda w: WrappedKey(w.kek_id, bytes([w.blob[0] ^ 1]) + w.blob[1:]),
        lambda w: WrappedKey(w.kek_id, w.blob[:-1]),
        lambda w: WrappedKey("kek-9999", w.blob),
        lambda w: WrappedKey(w.kek_id, b""),
    ],
    ids=["flipped", "truncated", "unknown-kek", "empty"],
)
def test_an_altered_wrapped_key_does_not_unwrap(
    keystore: Keystore, tamper: Callable[[WrappedKey], WrappedKey]
) -> None:
    wrapped = keystore.wrap(DATA_KEY, CONTEXT)
    with pytest.raises(UnwrapError):
        keystore.unwrap(tamper(wrapped), CONTEXT)


def test_the_file_keystore_is_owner_only_and_survives_a_restart(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    wrapped = FileKeystore(keys).wrap(DATA_KEY, CONTEXT)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    [kek] = keys.iterdir()
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    assert FileKeystore(keys, create=False).unwrap(wrapped, CONTEXT) == DATA_KEY


def test_after_rotation_new_wraps_use_the_new_kek_and_old_ones_still_unwrap(
    tmp_path: Path,
) -> None:
    keystore = FileKeystore(tmp_path / "keys")
    old = keystore.wrap(DATA_KEY, CONTEXT)
    assert keystore.rotate() == "kek-0002" == keystore.current_kek_id
    new = keystore.wrap(DATA_KEY, CONTEXT)
    assert (old.kek_id, new.kek_id) == ("kek-0001", "kek-0002")
    restarted = FileKeystore(tmp_path / "keys")
    assert restarted.unwrap(old, CONTEXT) == restarted.unwrap(new, CONTEXT) == DATA_KEY


def test_a_keystore_others_can_read_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    FileKeystore(keys)
    [kek] = keys.iterdir()
    kek.chmod(0o644)
    with pytest.raises(KeystoreError, match="readable by others"):
        FileKeystore(keys)
    kek.chmod(0o600)
    keys.chmod(0o755)
    with pytest.raises(KeystoreError, match="readable by others"):
        FileKeystore(keys)


def test_a_missing_or_broken_keystore_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="does not exist"):
        FileKeystore(tmp_path / "absent", create=False)
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    with pytest.raises(KeystoreError, match="no key-encryption key"):
        FileKeystore(empty, create=False)
    (empty / "kek-0001.key").write_bytes(b"short")
    (empty / "kek-0001.key").chmod(0o600)
    with pytest.raises(KeystoreError, match="not a 256-bit key"):
        FileKeystore(empty)


def test_the_double_imitates_a_destroyed_kms_key() -> None:
    keystore = MemoryKeystore()
    wrapped = keystore.wrap(DATA_KEY, CONTEXT)
    keystore.destroy_kek(wrapped.kek_id)
    with pytest.raises(UnwrapError, match="destroyed"):
        keystore.unwrap(wrapped, CONTEXT)
