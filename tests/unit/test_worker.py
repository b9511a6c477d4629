"""The worker's composition root: which API keys the status page takes, and who they admit."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.auth import ApiKeyStore, Role, add_key
from connectors.worker import MissingKeysError, operator_authorizer, status_keys
from processors.router.ports import AccessDeniedError, UnauthenticatedError
from streams.settings import KafkaSettings, Profile
from tests.unit.domain_builders import uid


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "api-keys.yaml"


def test_an_operators_key_is_admitted_under_its_name_and_key_id(keys_file: Path) -> None:
    key, entry = add_key(keys_file, role=Role.OPERATOR, principal="ops-desk")
    authorize = operator_authorizer(status_keys_at(keys_file))

    caller = authorize(f"Bearer {key}")

    assert (caller.principal, caller.role) == ("ops-desk", "operator")
    assert caller.key_id == entry.key_id and caller.key_id.startswith("sp_operator_")
    assert authorize(f"bearer   {key}  ") == caller  # scheme case and spacing as before


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz"])
def test_no_bearer_key_is_unauthenticated(keys_file: Path, header: str | None) -> None:
    add_key(keys_file, role=Role.OPERATOR, principal="ops-desk")
    with pytest.raises(UnauthenticatedError) as raised:
        operator_authorizer(status_keys_at(keys_file))(header)
    assert raised.value.invalid_key is False


def test_an_unknown_key_is_an_invalid_key(keys_file: Path) -> None:
    add_key(keys_file, role=Role.OPERATOR, principal="ops-desk")
    with pytest.raises(UnauthenticatedError) as raised:
        operator_authorizer(status_keys_at(keys_file))("Bearer sp_operator_" + "x" * 43)
    assert raised.value.invalid_key is True


@pytest.mark.parametrize("role", [Role.AGENCY, Role.PROVIDER])
def test_other_roles_are_denied(keys_file: Path, role: Role) -> None:
    ids = {"agency_id": "nl-police"} if role is Role.AGENCY else {"provider_id": uid("p")}
    key, _ = add_key(keys_file, role=role, principal="someone", **ids)
    with pytest.raises(AccessDeniedError, match="only operators read survivor status"):
        operator_authorizer(status_keys_at(keys_file))(f"Bearer {key}")


def test_without_a_keys_file_dev_warns_and_stays_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAFEPASSAGE_API_KEYS_FILE", raising=False)
    warnings: list[str] = []
    assert status_keys(KafkaSettings(profile=Profile.DEV), warnings.append) is None
    assert warnings and "status page is open" in warnings[0]


def test_without_a_keys_file_production_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAFEPASSAGE_API_KEYS_FILE", raising=False)
    with pytest.raises(MissingKeysError, match="SAFEPASSAGE_API_KEYS_FILE is not set"):
        status_keys(KafkaSettings(profile=Profile.PRODUCTION))


def status_keys_at(path: Path) -> ApiKeyStore:
    """The store ``status_keys`` loads from ``SAFEPASSAGE_API_KEYS_FILE``."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SAFEPASSAGE_API_KEYS_FILE", str(path))
        store = status_keys(KafkaSettings())
    assert store is not None
    return store
