"""The ``.avsc`` files, loaded, parsed and fingerprinted once per process.

Each schema is known by its event type (the file name), its Avro full name
(what a schema registry stores) and its 8-byte CRC-64-AVRO fingerprint (what
an Avro single-object encoded record starts with). Released versions under
``released/<event.type>/v<N>.avsc`` are loaded too: a record written with an
older version is still readable, resolved to the current one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import SchemaParseException, fingerprint, to_parsing_canonical_form

from schemas import AVRO_DIR, RELEASED_DIR
from schemas.exceptions import SchemaLoadError, UnknownEventTypeError

__all__ = ["EventSchema", "EventSchemas", "event_schemas", "fingerprint_of", "parse"]

_RELEASED_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")


@dataclass(frozen=True)
class EventSchema:
    """One version of one event type's schema."""

    event_type: str
    version: int | None
    """Released version number; None for the current schema in ``schemas/avro/``."""
    path: Path
    definition: Mapping[str, Any]
    """The schema as written, docs included (what is registered in a schema registry)."""
    parsed: Any
    """fastavro's parsed form, for its readers and writers."""
    canonical: str
    """Avro Parsing Canonical Form: what the fingerprint is computed over."""
    fingerprint: bytes
    """CRC-64-AVRO of the canonical form, 8 bytes little-endian, as in single-object encoding."""

    @property
    def full_name(self) -> str:
        """Full name of the top-level record, e.g. ``org.safepassage.events.CaseClosed``."""
        return str(self.parsed["name"])

    @property
    def schema_str(self) -> str:
        """The schema as compact JSON, docs included, for a schema registry."""
        return json.dumps(self.definition, separators=(",", ":"), ensure_ascii=False)


def fingerprint_of(canonical: str) -> bytes:
    """CRC-64-AVRO fingerprint of a Parsing Canonical Form, little-endian bytes.

    fastavro renders the fingerprint as the hex of its little-endian bytes
    (``"null"`` gives ``8a8f25cce724dd63``, the Avro spec's 0x63dd24e7cc258f8a),
    which is the byte order the single-object header wants.
    """
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


def parse(definition: Mapping[str, Any] | str) -> tuple[Any, str, bytes]:
    """Parse a schema (dict or JSON text): fastavro's form, canonical form, fingerprint.

    Each call gets its own table of named types, so that two self-contained
    schemas may define the same shared type (``Sealed``) without a clash.
    """
    raw = json.loads(definition) if isinstance(definition, str) else dict(definition)
    parsed = parse_schema(raw, named_schemas={})
    canonical = to_parsing_canonical_form(parsed)
    return parsed, canonical, fingerprint_of(canonical)


def _load(event_type: str, version: int | None, path: Path) -> EventSchema:
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaLoadError(f"{path}: cannot be read as JSON ({exc})") from exc
    if not isinstance(definition, dict) or definition.get("type") != "record":
        raise SchemaLoadError(f"{path}: the top-level schema must be a record")
    try:
        parsed, canonical, fp = parse(definition)
    except (ValueError, TypeError, KeyError, SchemaParseException) as exc:
        raise SchemaLoadError(f"{path}: not a valid Avro schema ({exc})") from exc
    return EventSchema(event_type, version, path, definition, parsed, canonical, fp)


class EventSchemas:
    """Every current and released schema, indexed for the codec."""

    def __init__(self, avro_dir: Path = AVRO_DIR, released_dir: Path = RELEASED_DIR) -> None:
        """Load every ``<event.type>.avsc`` of ``avro_dir`` and its released versions."""
        paths = sorted(avro_dir.glob("*.avsc"))
        if not paths:
            raise SchemaLoadError(f"no .avsc files in {avro_dir}")
        self._current: dict[str, EventSchema] = {}
        self._released: dict[str, tuple[EventSchema, ...]] = {}
        self._by_fingerprint: dict[bytes, EventSchema] = {}
        self._by_name: dict[str, str] = {}
        for path in paths:
            event_type = path.name.removesuffix(".avsc")
            current = _load(event_type, None, path)
            if current.full_name in self._by_name:
                raise SchemaLoadError(
                    f"{path}: record name {current.full_name} is already used by "
                    f"{self._by_name[current.full_name]}.avsc"
                )
            self._current[event_type] = current
            self._by_name[current.full_name] = event_type
            self._released[event_type] = self._load_released(released_dir / event_type, current)
        # Current schemas win a fingerprint shared with a released version: reading
        # with writer == reader skips schema resolution.
        for released in self._released.values():
            for schema in released:
                self._by_fingerprint.setdefault(schema.fingerprint, schema)
        for schema in self._current.values():
            self._by_fingerprint[schema.fingerprint] = schema

    @staticmethod
    def _load_released(folder: Path, current: EventSchema) -> tuple[EventSchema, ...]:
        if not folder.is_dir():
            return ()
        versions: list[EventSchema] = []
        for path in folder.iterdir():
            match = _RELEASED_FILE.match(path.name)
            if match is None:
                continue
            schema = _load(current.event_type, int(match.group(1)), path)
            if schema.full_name != current.full_name:
                raise SchemaLoadError(
                    f"{path}: record name {schema.full_name} differs from the current "
                    f"{current.full_name}; renaming a record is a breaking change"
                )
            versions.append(schema)
        return tuple(sorted(versions, key=lambda s: s.version or 0))

    @property
    def event_types(self) -> tuple[str, ...]:
        """Every event type with a current schema, sorted."""
        return tuple(self._current)

    def current(self, event_type: str) -> EventSchema:
        """The current schema of an event type: what is written, and what readers resolve to."""
        try:
            return self._current[event_type]
        except KeyError:
            raise UnknownEventTypeError(f"no schema for event type {event_type!r}") from None

    def released(self, event_type: str) -> tuple[EventSchema, ...]:
        """Released versions of an event type, oldest first."""
        self.current(event_type)
        return self._released[event_type]

    def by_fingerprint(self, fp: bytes) -> EventSchema | None:
        """The current or released schema with this fingerprint, if any."""
        return self._by_fingerprint.get(fp)

    def event_type_of(self, full_name: str) -> str | None:
        """The event type whose record has this Avro full name, if any."""
        return self._by_name.get(full_name)


@cache
def event_schemas() -> EventSchemas:
    """The installed contract, loaded on first use and shared by the process."""
    return EventSchemas()
