"""Schema evolution: FULL_TRANSITIVE checks with the field named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connectors.cli import main
from schemas import AVRO_DIR
from schemas.compatibility import check, check_event, release
from schemas.registry import EventSchemas


def copy_contract(tmp_path: Path) -> tuple[Path, Path]:
    avro_dir = tmp_path / "avro"
    shutil.copytree(AVRO_DIR, avro_dir)
    return avro_dir, avro_dir / "released"


def edit(path: Path, change: Any) -> None:
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema, indent=2))


def test_the_installed_contract_is_full_transitive_compatible() -> None:
    assert check(EventSchemas()) == {t: [] for t in EventSchemas().event_types}


def test_a_new_field_without_default_is_refused_naming_the_field(tmp_path: Path) -> None:
    avro_dir, released = copy_contract(tmp_path)
    edit(
        avro_dir / "case.closed.avsc",
        lambda s: s["fields"].append({"name": "closing_officer", "type": "string", "doc": "x"}),
    )

    problems = check_event(EventSchemas(avro_dir, released), "case.closed")

    assert [p.direction for p in problems] == ["backward"]
    assert problems[0].fields == ("closing_officer",)
    assert "closing_officer" in str(problems[0])
    assert "reader_field_missing_default_value" in str(problems[0])


def test_a_new_field_with_a_default_is_compatible_and_can_be_released(tmp_path: Path) -> None:
    avro_dir, released = copy_contract(tmp_path)
    edit(
        avro_dir / "case.closed.avsc",
        lambda s: s["fields"].append(
            {"name": "review_due", "type": ["null", "string"], "default": None, "doc": "x"}
        ),
    )
    contract = EventSchemas(avro_dir, released)

    assert check_event(contract, "case.closed") == []
    assert release(contract, "case.closed", released) == 2
    assert (released / "case.closed" / "v2.avsc").exists()
    assert release(EventSchemas(avro_dir, released), "case.closed", released) is None


def test_removing_an_enum_symbol_is_absorbed_by_the_enum_default(tmp_path: Path) -> None:
    """Why every enum has a default: readers map unknown symbols to it."""
    avro_dir, released = copy_contract(tmp_path)
    path = avro_dir / "case.closed.avsc"
    schema = json.loads(path.read_text())
    outcome = next(f for f in schema["fields"] if f["name"] == "outcome")
    outcome["type"]["symbols"].pop()
    path.write_text(json.dumps(schema))

    assert check_event(EventSchemas(avro_dir, released), "case.closed") == []


def test_changing_a_field_type_breaks_both_directions(tmp_path: Path) -> None:
    avro_dir, released = copy_contract(tmp_path)
    path = avro_dir / "case.closed.avsc"
    schema = json.loads(path.read_text())
    agency = next(f for f in schema["fields"] if f["name"] == "agency_id")
    agency["type"] = "long"
    path.write_text(json.dumps(schema))

    problems = check_event(EventSchemas(avro_dir, released), "case.closed")

    assert {p.direction for p in problems} == {"backward", "forward"}
    assert all("type_mismatch" in p.kinds for p in problems)


def test_release_refuses_a_breaking_schema(tmp_path: Path) -> None:
    avro_dir, released = copy_contract(tmp_path)
    edit(avro_dir / "case.closed.avsc", lambda s: s["fields"].pop())
    edit(
        avro_dir / "case.closed.avsc",
        lambda s: s["fields"].append({"name": "mandatory", "type": "int", "doc": "x"}),
    )
    with pytest.raises(ValueError, match="mandatory"):
        release(EventSchemas(avro_dir, released), "case.closed", released)


def test_cli_check_passes_on_the_installed_contract() -> None:
    result = CliRunner().invoke(main, ["schemas", "check"])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") == len(EventSchemas().event_types)
