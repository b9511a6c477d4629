"""API keys of the intake API: format, hashing, the keys file, reloads and the role matrix."""

from __future__ import annotations

import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from connectors.auth import (
    ApiKeyEntry,
    ApiKeyStore,
    Principal,
    Role,
    add_key,
    authorize_capacity_report,
    authorize_directory_change,
    authorize_directory_read,
    authorize_event,
    authorize_event_type,
    authorize_status_read,
    generate_key,
    hash_key,
    key_id_of,
    load_keys,
    may_read_status_of,
)
from connectors.exceptions import ApiKeysError, ConnectorsError, ForbiddenError
from connectors.intake import register
from schemas.models import MODELS, ReferralAccepted, ReferralCancelled, RiskAssessed
from schemas.types import Actor, CancelReason, RiskLevel
from streams.contract import AGENCY_EVENTS, PROVIDER_ANSWERS

T0 = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
SURVIVOR = uuid.UUID("6f1c2e4a-5b3d-4c7e-9a8b-0d1e2f3a4b5c")
PROVIDER = uuid.UUID("1d2c3b4a-0000-4000-8000-00000000abcd")
OTHER_PROVIDER = uuid.UUID("1d2c3b4a-0000-4000-8000-00000000ffff")
AGENCY = "agency:nl-police"

AGENCY_PRINCIPAL = Principal("nl-police", Role.AGENCY, "sp_agency_aaaaaaaa", agency_id=AGENCY)
PROVIDER_PRINCIPAL = Principal(
    "shelter-1", Role.PROVIDER, "sp_provider_bbbbbbbb", provider_id=PROVIDER
)
OPERATOR_PRINCIPAL = Principal("duty-desk", Role.OPERATOR, "sp_operator_cccccccc")


# ------------------------------------------------------------------------- keys


@pytest.mark.parametrize("role", list(Role))
def test_a_key_names_its_role_and_carries_256_random_bits(role: Role) -> None:
    keys = {generate_key(role) for _ in range(50)}

    assert len(keys) == 50
    for key in keys:
        prefix = f"sp_{role.value}_"
        assert key.startswith(prefix)
        assert len(key) - len(prefix) == 43  # 32 bytes in unpadded base64url
        assert key_id_of(key) == key[: len(prefix) + 8]


def test_the_stored_form_is_a_sha256_digest_never_the_key() -> None:
    key = generate_key(Role.AGENCY)

    digest = hash_key(key)

    assert digest.startswith("sha256:")
    assert len(digest) == len("sha256:") + 64
    assert key not in digest
    assert hash_key(key) == digest
    assert hash_key(key + "x") != digest


@pytest.mark.parametrize(
    "text", ["", "sp", "sp_admin_abcdefghijkl", "xx_agency_abcdefghij", "sp_agency_abc"]
)
def test_malformed_keys_have_no_key_id(text: str) -> None:
    assert key_id_of(text) is None


# ------------------------------------------------------------------- keys file


def test_added_keys_authenticate_and_only_their_hashes_are_stored(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "api-keys.yaml"

    agency_key, agency = add_key(path, role=Role.AGENCY, principal="nl-police", agency_id=AGENCY)
    provider_key, _ = add_key(
        path, role=Role.PROVIDER, principal="shelter-1", provider_id=PROVIDER, now=T0
    )
    operator_key, _ = add_key(path, role=Role.OPERATOR, principal="duty-desk")

    text = path.read_text()
    for key in (agency_key, provider_key, operator_key):
        assert key not in text
        assert hash_key(key) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store = ApiKeyStore(path)
    assert store.authenticate(agency_key) == Principal(
        "nl-police", Role.AGENCY, agency.key_id or "", agency_id=AGENCY
    )
    provider = store.authenticate(provider_key)
    assert provider is not None
    assert (provider.role, provider.provider_id) == (Role.PROVIDER, PROVIDER)
    operator = store.authenticate(operator_key)
    assert operator is not None
    assert operator.role is Role.OPERATOR
    assert store.authenticate(generate_key(Role.AGENCY)) is None
    assert store.authenticate(agency_key[:-1]) is None
    assert store.authenticate("") is None


def test_several_keys_per_principal_allow_rotation(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.yaml"
    old, _ = add_key(path, role=Role.AGENCY, principal="nl-police", agency_id=AGENCY)
    new, _ = add_key(path, role=Role.AGENCY, principal="nl-police", agency_id=AGENCY)

    store = ApiKeyStore(path)

    assert store.authenticate(old) is not None
    assert store.authenticate(new) is not None


def test_a_principal_keeps_its_role(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.yaml"
    add_key(path, role=Role.AGENCY, principal="nl-police", agency_id=AGENCY)

    with pytest.raises(ApiKeysError, match="already has role agency"):
        add_key(path, role=Role.OPERATOR, principal="nl-police")


@pytest.mark.parametrize(
    ("role", "ids", "message"),
    [
        (Role.PROVIDER, {}, "a provider needs provider_id"),
        (Role.PROVIDER, {"provider_id": PROVIDER, "agency_id": AGENCY}, "no agency_id"),
        (Role.AGENCY, {}, "an agency needs agency_id"),
        (Role.AGENCY, {"agency_id": AGENCY, "provider_id": PROVIDER}, "no provider_id"),
        (Role.OPERATOR, {"agency_id": AGENCY}, "neither provider_id nor agency_id"),
    ],
)
def test_ids_must_fit_the_role(
    tmp_path: Path, role: Role, ids: dict[str, Any], message: str
) -> None:
    path = tmp_path / "api-keys.yaml"

    with pytest.raises(ApiKeysError, match=message):
        add_key(path, role=role, principal="someone", **ids)
    assert not path.exists()


def test_principal_names_cannot_hold_spaces(tmp_path: Path) -> None:
    with pytest.raises(ApiKeysError, match="principal"):
        add_key(tmp_path / "k.yaml", role=Role.OPERATOR, principal="Jane Doe")


def _entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "principal": "nl-police",
        "role": "agency",
        "agency_id": AGENCY,
        "key_hash": hash_key(generate_key(Role.AGENCY)),
    }
    entry.update(overrides)
    return entry


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("keys: [\n  - principal: x\n  bad", "not valid YAML at line"),
        ("- just\n- a list\n", "must be a mapping with a 'keys' list"),
        ("keys: 5\n", "keys: Input should be a valid list"),
        (yaml.safe_dump({"keys": [_entry(role="admin")]}), "entry 1, role"),
        (yaml.safe_dump({"keys": [_entry(), _entry(key_hash="md5:abc")]}), "entry 2, key_hash"),
        (yaml.safe_dump({"keys": [_entry(agency_id=None)]}), "entry 1: Value error, an agency"),
        (yaml.safe_dump({"keys": [_entry(secret="x")]}), "entry 1, secret: Extra inputs"),
        (yaml.safe_dump({"other": []}), "keys: Field required"),
    ],
)
def test_a_bad_keys_file_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "api-keys.yaml"
    path.write_text(content)

    with pytest.raises(ApiKeysError, match=message) as caught:
        load_keys(path)

    assert str(path) in str(caught.value)
    try:
        document = yaml.safe_load(content)
    except yaml.YAMLError:
        document = None
    entries = document.get("keys") if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        assert str(entry.get("key_hash")) not in str(caught.value)  # never repeated
    assert isinstance(caught.value, ConnectorsError)


def test_a_missing_keys_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ApiKeysError, match="safepassage keys add"):
        ApiKeyStore(tmp_path / "absent.yaml")


def test_an_empty_keys_file_has_no_keys(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.yaml"
    path.write_text("# nothing yet\n")

    assert ApiKeyStore(path).entries == ()


def test_an_invalid_file_is_not_overwritten_by_add(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.yaml"
    path.write_text("keys: [oops\n")

    with pytest.raises(ApiKeysError):
        add_key(path, role=Role.OPERATOR, principal="duty-desk")
    assert path.read_text() == "keys: [oops\n"


def test_added_and_revoked_keys_take_effect_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.yaml"
    first, _ = add_key(path, role=Role.OPERATOR, principal="duty-desk")
    store = ApiKeyStore(path, reload_interval_s=0)

    second, _ = add_key(path, role=Role.OPERATOR, principal="night-desk")
    assert store.authenticate(second) is not None

    kept = [e for e in load_keys(path) if e.principal != "duty-desk"]
    path.write_text(yaml.safe_dump({"keys": [e.model_dump(mode="json") for e in kept]}))
    assert store.authenticate(first) is None
    assert store.authenticate(second) is not None


def test_a_broken_reload_keeps_the_last_good_keys(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.yaml"
    key, _ = add_key(path, role=Role.OPERATOR, principal="duty-desk")
    store = ApiKeyStore(path, reload_interval_s=0)

    path.write_text("keys: [half a file")

    assert store.authenticate(key) is not None


def test_entries_model_is_strict() -> None:
    entry = ApiKeyEntry.model_validate(_entry())
    assert entry.principal_for().role is Role.AGENCY
    with pytest.raises(ValueError, match="key_hash"):
        ApiKeyEntry.model_validate(_entry(key_hash=generate_key(Role.AGENCY)))


# ------------------------------------------------------------------- role matrix


@pytest.mark.parametrize("event_type", sorted(MODELS))
@pytest.mark.parametrize(
    "principal", [AGENCY_PRINCIPAL, PROVIDER_PRINCIPAL, OPERATOR_PRINCIPAL], ids=str
)
def test_role_matrix_of_event_types(event_type: str, principal: Principal) -> None:
    allowed = {
        Role.AGENCY: AGENCY_EVENTS,
        Role.PROVIDER: PROVIDER_ANSWERS,
        Role.OPERATOR: frozenset(),
    }[principal.role]

    if event_type in allowed:
        authorize_event_type(principal, event_type)
    else:
        with pytest.raises(ForbiddenError):
            authorize_event_type(principal, event_type)


def _answer(provider_id: uuid.UUID) -> ReferralAccepted:
    return ReferralAccepted(
        occurred_at=T0,
        survivor_id=SURVIVOR,
        referral_id=uuid.uuid4(),
        provider_id=provider_id,
        attempt=1,
    )


def _risk(agency_id: str) -> RiskAssessed:
    return RiskAssessed(
        occurred_at=T0,
        survivor_id=SURVIVOR,
        agency_id=agency_id,
        level=RiskLevel.HIGH,
        immediate_needs=(),
    )


def test_a_provider_answers_only_for_itself() -> None:
    authorize_event(PROVIDER_PRINCIPAL, _answer(PROVIDER))

    with pytest.raises(ForbiddenError, match="its own provider_id") as caught:
        authorize_event(PROVIDER_PRINCIPAL, _answer(OTHER_PROVIDER), "/3/data")
    assert caught.value.location == "/3/data/provider_id"


def test_an_agency_publishes_only_under_its_own_agency_id() -> None:
    authorize_event(AGENCY_PRINCIPAL, _risk(AGENCY))

    with pytest.raises(ForbiddenError, match="its own agency_id") as caught:
        authorize_event(AGENCY_PRINCIPAL, _risk("agency:somebody-else"))
    assert caught.value.location == "/data/agency_id"


@pytest.mark.parametrize("actor", list(Actor))
def test_an_agency_cancels_only_as_an_agency(actor: Actor) -> None:
    cancelled = ReferralCancelled(
        occurred_at=T0,
        survivor_id=SURVIVOR,
        referral_id=uuid.uuid4(),
        reason=CancelReason.AGENCY_REQUEST,
        cancelled_by=actor,
    )

    if actor is Actor.AGENCY:
        authorize_event(AGENCY_PRINCIPAL, cancelled)
    else:
        with pytest.raises(ForbiddenError, match="cancelled_by AGENCY"):
            authorize_event(AGENCY_PRINCIPAL, cancelled)


def test_no_event_is_an_operators_to_publish() -> None:
    with pytest.raises(ForbiddenError, match="operators"):
        authorize_event(OPERATOR_PRINCIPAL, _risk(AGENCY))


@pytest.mark.parametrize(
    "principal", [AGENCY_PRINCIPAL, PROVIDER_PRINCIPAL, OPERATOR_PRINCIPAL], ids=str
)
def test_operators_and_agencies_read_status_providers_do_not(principal: Principal) -> None:
    if principal.role is Role.PROVIDER:
        with pytest.raises(ForbiddenError, match="providers do not"):
            authorize_status_read(principal)
    else:
        authorize_status_read(principal)


def test_an_agency_sees_only_the_survivors_of_its_cases() -> None:
    own = AGENCY_PRINCIPAL.agency_id
    assert own is not None
    assert may_read_status_of(OPERATOR_PRINCIPAL, frozenset())
    assert may_read_status_of(OPERATOR_PRINCIPAL, {"agency:any"})
    assert may_read_status_of(AGENCY_PRINCIPAL, {own})
    assert may_read_status_of(AGENCY_PRINCIPAL, {"agency:owner", own})  # shared with it
    assert not may_read_status_of(AGENCY_PRINCIPAL, {"agency:someone-else"})
    assert not may_read_status_of(AGENCY_PRINCIPAL, {own + "-x"})
    assert not may_read_status_of(AGENCY_PRINCIPAL, frozenset())
    assert not may_read_status_of(PROVIDER_PRINCIPAL, {own})


# --------------------------------------------------------------------------- CLI


def _cli() -> click.Group:
    @click.group()
    def main() -> None:
        """A stand-in for the safepassage group."""

    register(main)
    return main


def test_keys_add_prints_the_key_once_and_stores_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.yaml"
    env = {"SAFEPASSAGE_API_KEYS_FILE": str(path)}

    result = CliRunner().invoke(
        _cli(),
        [
            "keys",
            "add",
            "--role",
            "provider",
            "--principal",
            "shelter-1",
            "--provider-id",
            str(PROVIDER),
        ],
        env=env,
    )

    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("sp_provider_")
    assert "shown only now" in result.stderr
    assert key not in path.read_text()
    principal = ApiKeyStore(path).authenticate(key)
    assert principal is not None
    assert principal.provider_id == PROVIDER


def test_keys_add_refuses_a_provider_without_its_id(tmp_path: Path) -> None:
    env = {"SAFEPASSAGE_API_KEYS_FILE": str(tmp_path / "api-keys.yaml")}

    result = CliRunner().invoke(
        _cli(), ["keys", "add", "--role", "provider", "--principal", "shelter-1"], env=env
    )

    assert result.exit_code == 1
    assert "a provider needs provider_id" in result.stderr
    assert result.stdout == ""


# ------------------------------------------------------------------- directory

ADMIN_PRINCIPAL = Principal("dir-admin", Role.DIRECTORY_ADMIN, "sp_directory-admin_dddddddd")
OTHER_PROVIDER = uuid.UUID("1d2c3b4a-0000-4000-8000-00000000ffff")


def test_keys_add_makes_a_directory_admin_key_that_publishes_under_its_own_source(
    tmp_path: Path,
) -> None:
    path = tmp_path / "api-keys.yaml"
    result = CliRunner().invoke(
        _cli(),
        ["keys", "add", "--role", "directory-admin", "--principal", "dir-admin"],
        env={"SAFEPASSAGE_API_KEYS_FILE": str(path)},
    )

    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("sp_directory-admin_")
    principal = ApiKeyStore(path).authenticate(key)
    assert principal is not None and principal.role is Role.DIRECTORY_ADMIN
    assert principal.key_id == key_id_of(key)
    assert principal.source_root == "/directory-admins/dir-admin"
    refused = CliRunner().invoke(
        _cli(),
        ["keys", "add", "--role", "directory-admin", "--principal", "x", "--agency-id", "a"],
        env={"SAFEPASSAGE_API_KEYS_FILE": str(path)},
    )
    assert refused.exit_code == 1
    assert "a directory-admin has neither provider_id nor agency_id" in refused.stderr


@pytest.mark.parametrize(
    ("principal", "may"),
    [
        # changes, reads all, reads its own, reports its own capacity, another's
        (ADMIN_PRINCIPAL, (True, True, True, True, True)),
        (OPERATOR_PRINCIPAL, (False, True, True, False, False)),
        (PROVIDER_PRINCIPAL, (False, False, True, True, False)),
        (AGENCY_PRINCIPAL, (False, False, False, False, False)),
    ],
    ids=["admin", "operator", "provider", "agency"],
)
def test_who_may_do_what_with_the_directory(
    principal: Principal, may: tuple[bool, bool, bool, bool, bool]
) -> None:
    changes, reads_all, reads_own, reports_own, reports_other = may

    def allowed(check: Any, *args: Any) -> bool:
        try:
            check(principal, *args)
        except ForbiddenError:
            return False
        return True

    assert allowed(authorize_directory_change) is changes
    assert allowed(authorize_directory_read) is reads_all
    assert allowed(authorize_directory_read, PROVIDER) is reads_own
    assert allowed(authorize_directory_read, OTHER_PROVIDER) is reads_all
    assert allowed(authorize_capacity_report, PROVIDER) is reports_own
    assert allowed(authorize_capacity_report, OTHER_PROVIDER) is reports_other
    assert allowed(authorize_capacity_report, None) is (principal is ADMIN_PRINCIPAL)


def test_directory_admins_neither_publish_events_nor_read_status() -> None:
    with pytest.raises(ForbiddenError, match="/v1/providers"):
        authorize_event_type(ADMIN_PRINCIPAL, "risk.assessed")
    with pytest.raises(ForbiddenError):
        authorize_status_read(ADMIN_PRINCIPAL)
    assert not may_read_status_of(ADMIN_PRINCIPAL, {"agency:nl-police"})
