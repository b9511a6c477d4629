"""Schema evolution: every current schema must be FULL_TRANSITIVE compatible.

FULL_TRANSITIVE (Confluent's term): the current schema can read data
written with every released version (backward), and every released version
can read data written with the current one (forward). Agencies and
providers upgrade on their own schedule, in any order, so both directions
matter for every version still in use.

The reader/writer rules come from the Apache Avro library
(:class:`avro.compatibility.ReaderWriterCompatibilityChecker`); this module
only applies them to the contract and names the fields that break.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from schemas import RELEASED_DIR
from schemas.registry import EventSchema, EventSchemas

__all__ = ["Incompatibility", "check", "check_event", "release"]


@dataclass(frozen=True)
class Incompatibility:
    """One way the current schema of an event type breaks a released version."""

    event_type: str
    released_version: int
    direction: str
    """``"backward"`` (current cannot read old data) or ``"forward"`` (old cannot read new)."""
    fields: tuple[str, ...]
    locations: tuple[str, ...]
    kinds: tuple[str, ...]

    def __str__(self) -> str:
        reader, writer = (
            ("the current schema", f"v{self.released_version} data")
            if self.direction == "backward"
            else (f"v{self.released_version} readers", "current data")
        )
        fields = ", ".join(f"'{name}'" for name in self.fields) or "(the record)"
        return (
            f"{self.event_type}: {reader} cannot read {writer} "
            f"({self.direction}): field {fields} at {', '.join(self.locations)}: "
            f"{', '.join(self.kinds)}"
        )


def _avro(schema: EventSchema) -> Any:
    return avro.schema.parse(json.dumps(schema.definition))


def _compare(
    event_type: str, version: int, direction: str, reader: Any, writer: Any
) -> Incompatibility | None:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader=reader, writer=writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    return Incompatibility(
        event_type=event_type,
        released_version=version,
        direction=direction,
        fields=tuple(sorted(str(m) for m in result.messages)),
        locations=tuple(sorted(str(loc) for loc in result.locations)),
        kinds=tuple(sorted({kind.value for kind in result.incompatibilities})),
    )


def check_event(schemas: EventSchemas, event_type: str) -> list[Incompatibility]:
    """Incompatibilities of one event type's current schema with all its releases."""
    current = _avro(schemas.current(event_type))
    found: list[Incompatibility] = []
    for released in schemas.released(event_type):
        old = _avro(released)
        version = released.version or 0
        for direction, reader, writer in (("backward", current, old), ("forward", old, current)):
            problem = _compare(event_type, version, direction, reader, writer)
            if problem is not None:
                found.append(problem)
    return found


def check(schemas: EventSchemas) -> dict[str, list[Incompatibility]]:
    """Every event type's incompatibilities (an empty list means compatible)."""
    return {event_type: check_event(schemas, event_type) for event_type in schemas.event_types}


def release(
    schemas: EventSchemas, event_type: str, released_dir: Path = RELEASED_DIR
) -> int | None:
    """Copy the current schema as the next released version if it changed.

    Returns the new version number, or None when the current schema equals
    the latest release (same Parsing Canonical Form and docs). Refuses to
    release a schema that is not FULL_TRANSITIVE compatible.
    """
    current = schemas.current(event_type)
    released = schemas.released(event_type)
    if released and released[-1].definition == current.definition:
        return None
    problems = check_event(schemas, event_type)
    if problems:
        raise ValueError("; ".join(str(p) for p in problems))
    version = (released[-1].version or 0) + 1 if released else 1
    folder = released[-1].path.parent if released else current.path.parent / "released" / event_type
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(current.path, folder / f"v{version}.avsc")
    return version
