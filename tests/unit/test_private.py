"""What the platform writes on disk is its owner's alone."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.auth import Role, add_key
from connectors.intake import IntakeSettings, create_app
from connectors.private import OWNER_ONLY_UMASK, owner_only_files, private_dir
from streams.settings import KafkaSettings
from tests.doubles import RecordingPublisher, key_directory


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def restored_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


def test_files_created_after_the_switch_are_owner_only(
    tmp_path: Path, restored_umask: None
) -> None:
    owner_only_files()
    (tmp_path / "case.json").write_text("{}")
    (tmp_path / "tables").mkdir()
    assert mode(tmp_path / "case.json") & 0o077 == 0
    assert mode(tmp_path / "tables") & 0o077 == 0
    assert os.umask(OWNER_ONLY_UMASK) == OWNER_ONLY_UMASK


def test_a_state_directory_left_readable_is_narrowed(tmp_path: Path) -> None:
    old = tmp_path / "state"
    old.mkdir(mode=0o755)
    old.chmod(0o755)
    assert mode(private_dir(old)) == 0o700
    assert mode(private_dir(tmp_path / "new" / "state")) == 0o700


def test_the_intake_keeps_its_state_and_keystore_owner_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    publisher = RecordingPublisher()
    keys_file = tmp_path / "keys.yaml"
    add_key(keys_file, role=Role.OPERATOR, principal="desk")
    create_app(
        IntakeSettings(api_keys_file=keys_file, state_dir=state),
        kafka=KafkaSettings(),
        publisher=publisher,
        directory=key_directory(publisher),
    )
    assert mode(state) == 0o700
