"""The .avsc files: documented, evolvable, privacy-safe, and loaded correctly."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas import AVRO_DIR, NAMESPACE, RELEASED_DIR
from schemas.exceptions import SchemaLoadError, UnknownEventTypeError
from schemas.registry import EventSchemas, event_schemas, fingerprint_of, parse

EVENT_TYPES = (
    "survivor.identified",
    "consent.granted",
    "consent.withdrawn",
    "risk.assessed",
    "referral.requested",
    "referral.offered",
    "referral.accepted",
    "referral.declined",
    "referral.started",
    "referral.completed",
    "referral.failed",
    "referral.cancelled",
    "referral.escalated",
    "referral.undelivered",
    "provider.registered",
    "provider.updated",
    "provider.capacity",
    "case.closed",
    "case.shared",
    "case.unshared",
    "survivor.erasure_requested",
)
PROVIDER_EVENTS = ("provider.registered", "provider.updated", "provider.capacity")
SURVIVOR_EVENTS = tuple(t for t in EVENT_TYPES if t not in PROVIDER_EVENTS)

UUID_FIELDS = {"survivor_id", "referral_id", "consent_id", "provider_id"}
TIME_FIELDS = {"occurred_at", "expires_at", "deadline", "missed_deadline"}

# Every clear string is a code: adding a new one is a privacy decision, made here.
CLEAR_STRINGS = {
    "agency_id",  # organisation identifier pattern
    "shared_with",  # organisation identifier pattern
    "jurisdiction",  # ISO 3166
    "jurisdictions",
    "languages",  # ISO 639
    "reasons",  # reason-code pattern
    "key_id",  # identifier pattern, inside Sealed
    "recipient",  # identifier pattern, inside Sealed
    "organization_name",  # public name of a provider organisation
    "hsds_service",  # a provider organisation's public HSDS listing (JSON), no survivor data
}
PERSONAL_WORDS = ("name", "phone", "email", "address", "contact", "birth", "narrative", "note")


def load(event_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((AVRO_DIR / f"{event_type}.avsc").read_text())
    return data


def walk_types(schema: Any) -> Iterator[dict[str, Any]]:
    """Every named or complex type inside a schema, depth first."""
    if isinstance(schema, list):
        for branch in schema:
            yield from walk_types(branch)
    elif isinstance(schema, dict):
        yield schema
        if schema.get("type") == "record":
            for field in schema["fields"]:
                yield from walk_types(field["type"])
        elif schema.get("type") == "array":
            yield from walk_types(schema["items"])


def fields_of(schema: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(record, field) for every field of every record in a schema."""
    for node in walk_types(schema):
        if node.get("type") == "record":
            for field in node["fields"]:
                yield node, field


def without_null(field_type: Any) -> Any:
    if isinstance(field_type, list):
        (inner,) = [branch for branch in field_type if branch != "null"]
        return inner
    return field_type


def test_there_is_one_schema_per_event_type() -> None:
    files = sorted(p.name.removesuffix(".avsc") for p in AVRO_DIR.glob("*.avsc"))
    assert files == sorted(EVENT_TYPES)
    assert event_schemas().event_types == tuple(sorted(EVENT_TYPES))


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_schema_is_a_documented_record_in_the_namespace(event_type: str) -> None:
    schema = load(event_type)
    assert schema["type"] == "record"
    assert schema["namespace"] == NAMESPACE
    assert f"'{event_type}'" in schema["doc"]
    for node in walk_types(schema):
        if node.get("type") in ("record", "enum"):
            assert node.get("doc", "").strip(), f"{node['name']} has no doc"
    for record, field in fields_of(schema):
        assert field.get("doc", "").strip(), f"{record['name']}.{field['name']} has no doc"


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_enum_can_grow(event_type: str) -> None:
    for node in walk_types(load(event_type)):
        if node.get("type") == "enum":
            assert node.get("default") == "UNKNOWN", node["name"]
            assert "UNKNOWN" in node["symbols"]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_ids_are_uuids_and_times_are_timestamp_millis(event_type: str) -> None:
    for _record, field in fields_of(load(event_type)):
        inner = without_null(field["type"])
        if field["name"] in UUID_FIELDS:
            assert inner == {"type": "string", "logicalType": "uuid"}, field["name"]
        if field["name"] in TIME_FIELDS:
            assert inner == {"type": "long", "logicalType": "timestamp-millis"}, field["name"]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_has_its_subject_and_time(event_type: str) -> None:
    top = {field["name"]: field for field in load(event_type)["fields"]}
    assert "occurred_at" in top
    subject = "provider_id" if event_type in PROVIDER_EVENTS else "survivor_id"
    assert not isinstance(top[subject]["type"], list), f"{subject} must not be nullable"


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_nullable_fields_default_to_null(event_type: str) -> None:
    for _record, field in fields_of(load(event_type)):
        if isinstance(field["type"], list):
            assert field["type"][0] == "null"
            assert "default" in field
            assert field["default"] is None


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_personal_data_is_only_ever_sealed(event_type: str) -> None:
    for record, field in fields_of(load(event_type)):
        name = field["name"]
        inner = without_null(field["type"])
        is_sealed = inner == "Sealed" or (isinstance(inner, dict) and inner.get("name") == "Sealed")
        if any(word in name for word in PERSONAL_WORDS) and name != "organization_name":
            assert is_sealed, f"{record['name']}.{name} looks personal but is not sealed"
        items = inner.get("items") if isinstance(inner, dict) else None
        if inner == "string" or items == "string":
            assert name in CLEAR_STRINGS, f"{record['name']}.{name} is a new clear string"


def test_survivor_identified_and_referral_requested_seal_personal_data() -> None:
    fields = {f["name"]: f for f in load("survivor.identified")["fields"]}
    assert without_null(fields["personal_data"]["type"])["name"] == "Sealed"
    fields = {f["name"]: f for f in load("referral.requested")["fields"]}
    assert without_null(fields["notes"]["type"])["name"] == "Sealed"


def test_shared_named_types_are_defined_identically_everywhere() -> None:
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    for event_type in EVENT_TYPES:
        schema = load(event_type)
        for node in walk_types(schema):
            if node.get("type") in ("record", "enum") and node is not schema:
                name = node["name"]
                if name in seen:
                    first, definition = seen[name]
                    assert node == definition, f"{name} differs between {first} and {event_type}"
                else:
                    seen[name] = (event_type, node)
    assert {"Sealed", "SealAlgorithm", "ServiceCategory", "Gender", "Urgency"} <= set(seen)


def test_sealed_has_the_agreed_shape() -> None:
    sealed = next(n for n in walk_types(load("survivor.identified")) if n.get("name") == "Sealed")
    fields = {f["name"]: f["type"] for f in sealed["fields"]}
    assert fields["ciphertext"] == "bytes"
    assert fields["key_id"] == "string"
    assert fields["recipient"] == "string"
    assert fields["algorithm"]["type"] == "enum"


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_first_released_version_exists(event_type: str) -> None:
    released = event_schemas().released(event_type)
    assert [schema.version for schema in released][:1] == [1]
    assert (RELEASED_DIR / event_type / "v1.avsc").is_file()
    assert released[0].full_name == event_schemas().current(event_type).full_name


def test_fingerprint_matches_the_avro_specification() -> None:
    # Avro's test vectors: the CRC-64-AVRO of "null" is 7195948357588979594.
    assert fingerprint_of('"null"') == (7195948357588979594).to_bytes(8, "little")


def test_schemas_are_indexed_by_fingerprint_and_name() -> None:
    schemas = event_schemas()
    for event_type in EVENT_TYPES:
        current = schemas.current(event_type)
        assert schemas.by_fingerprint(current.fingerprint) is current
        assert schemas.event_type_of(current.full_name) == event_type
        assert current.version is None
        assert parse(current.schema_str)[2] == current.fingerprint
    assert schemas.by_fingerprint(b"\0" * 8) is None
    assert schemas.event_type_of("org.example.Other") is None


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(UnknownEventTypeError, match="no schema"):
        event_schemas().current("survivor.renamed")
    with pytest.raises(UnknownEventTypeError):
        event_schemas().released("survivor.renamed")


def test_schemas_are_loaded_once() -> None:
    assert event_schemas() is event_schemas()


@pytest.fixture
def avro_copy(tmp_path: Path) -> Path:
    shutil.copytree(AVRO_DIR, tmp_path / "avro")
    return tmp_path / "avro"


def test_broken_schema_fails_loading_with_its_path(avro_copy: Path) -> None:
    (avro_copy / "case.closed.avsc").write_text(
        '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nonsense"}]}'
    )
    with pytest.raises(SchemaLoadError, match=r"case\.closed\.avsc"):
        EventSchemas(avro_copy, avro_copy / "released")


def test_not_json_fails_loading(avro_copy: Path) -> None:
    (avro_copy / "case.closed.avsc").write_text("{")
    with pytest.raises(SchemaLoadError):
        EventSchemas(avro_copy, avro_copy / "released")


def test_non_record_schema_fails_loading(avro_copy: Path) -> None:
    (avro_copy / "case.closed.avsc").write_text('"string"')
    with pytest.raises(SchemaLoadError, match="must be a record"):
        EventSchemas(avro_copy, avro_copy / "released")


def test_two_event_types_may_not_share_a_record_name(avro_copy: Path) -> None:
    shutil.copy(avro_copy / "case.closed.avsc", avro_copy / "case.reopened.avsc")
    with pytest.raises(SchemaLoadError, match="already used"):
        EventSchemas(avro_copy, avro_copy / "released")


def test_a_released_version_may_not_rename_the_record(avro_copy: Path) -> None:
    schema = json.loads((avro_copy / "case.closed.avsc").read_text())
    schema["name"] = "CaseEnded"
    (avro_copy / "released" / "case.closed" / "v2.avsc").write_text(json.dumps(schema))
    with pytest.raises(SchemaLoadError, match="renaming"):
        EventSchemas(avro_copy, avro_copy / "released")


def test_released_versions_are_ordered_and_other_files_ignored(avro_copy: Path) -> None:
    folder = avro_copy / "released" / "case.closed"
    schema = json.loads((folder / "v1.avsc").read_text())
    schema["doc"] += " Second release."
    (folder / "v10.avsc").write_text(json.dumps(schema))
    (folder / "v2.avsc").write_text(json.dumps(schema))
    (folder / "README.md").write_text("notes")
    schemas = EventSchemas(avro_copy, avro_copy / "released")
    assert [s.version for s in schemas.released("case.closed")] == [1, 2, 10]


def test_empty_directory_fails_loading(tmp_path: Path) -> None:
    with pytest.raises(SchemaLoadError, match=r"no \.avsc"):
        EventSchemas(tmp_path, tmp_path / "released")
