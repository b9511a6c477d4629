"""Inside a sealed ``personal_data``: named personal fields, so each recipient gets least data.

``survivor.identified`` carries the survivor's personal data in one sealed
field. Its plaintext is the compact JSON of :class:`PersonalData`: a fixed
vocabulary of fields (:class:`PersonalField`), each free text, every one
optional. The vocabulary is what lets the platform hand a housing provider
a survivor's name and contact but not their medical detail: a field the
platform cannot name, it could not withhold, so an unknown field is refused
at the edge (the intake answers 400; the inbound relay dead-letters).

This module is part of the contract: the SDK writes it, the intake checks it,
the platform selects from it (:mod:`processors.disclosure`) and the provider
SDK reads what it was given. The values are personal data: they exist in
clear only in the memory of the agency that seals them, of the intake for
the moment of a check or a disclosure, and of the provider they were
disclosed to.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, model_validator

from schemas.exceptions import SchemasError

__all__ = [
    "MAX_FIELD_CHARS",
    "PersonalData",
    "PersonalDataError",
    "PersonalField",
]

MAX_FIELD_CHARS = 4000
"""The longest value of one field, in characters: a paragraph, not a file."""


class PersonalDataError(SchemasError):
    """A plaintext is not personal data in the contract's form (the message never quotes it)."""


class PersonalField(StrEnum):
    """The personal fields a survivor's ``personal_data`` may hold; each a unit of disclosure."""

    NAME = "name"
    """Name(s) the survivor uses, as they wish to be addressed."""
    CONTACT = "contact"
    """Safe ways to reach the survivor (phone, messenger, through whom)."""
    LOCATION = "location"
    """Where the survivor is now (shelter, address, town)."""
    DOCUMENTS = "documents"
    """Identity and travel documents: which exist, who holds them, numbers."""
    MEDICAL = "medical"
    """Physical and mental health: conditions, injuries, medication, pregnancy."""
    LEGAL = "legal"
    """Residence status, proceedings, the survivor's lawyer, deadlines."""
    FINANCIAL = "financial"
    """Income, debts (debt bondage), bank account, benefits."""
    FAMILY = "family"
    """Dependants and accompanying family members, their needs."""
    SAFETY = "safety"
    """Safety concerns: people and places to avoid, how exploiters might look for them."""
    NARRATIVE = "narrative"
    """The survivor's account of their exploitation."""


_Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_FIELD_CHARS)]


class PersonalData(BaseModel):
    """The plaintext of a sealed ``personal_data``: the fields known, none required, nothing else.

    ``repr`` names the fields present and never their values.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: _Text | None = None
    contact: _Text | None = None
    location: _Text | None = None
    documents: _Text | None = None
    medical: _Text | None = None
    legal: _Text | None = None
    financial: _Text | None = None
    family: _Text | None = None
    safety: _Text | None = None
    narrative: _Text | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.present():
            raise ValueError("personal data names at least one field")
        return self

    def __repr_args__(self) -> list[tuple[str | None, object]]:
        return [("fields", sorted(f.value for f in self.present()))]

    def present(self) -> frozenset[PersonalField]:
        """The fields that hold a value."""
        return frozenset(f for f in PersonalField if getattr(self, f.value) is not None)

    def values(self) -> dict[str, str]:
        """The fields that hold a value, by name (personal data: never log it)."""
        return {f.value: getattr(self, f.value) for f in PersonalField if f in self.present()}

    def only(self, fields: frozenset[PersonalField]) -> dict[str, str]:
        """The values of ``fields`` that are present: what one recipient may receive."""
        return {name: value for name, value in self.values().items() if name in fields}

    def to_bytes(self) -> bytes:
        """The plaintext to seal: compact JSON with sorted keys, fields present only."""
        return json.dumps(self.values(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> PersonalData:
        """From a mapping of field names; :class:`PersonalDataError` names what is wrong."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            raise PersonalDataError(_explain(exc)) from None

    @classmethod
    def from_bytes(cls, plaintext: bytes) -> PersonalData:
        """Parse an opened ``personal_data``; :class:`PersonalDataError` if it is not one."""
        try:
            document = json.loads(plaintext)
        except (UnicodeDecodeError, ValueError):
            raise PersonalDataError("is not JSON (personal data is a JSON object)") from None
        if not isinstance(document, dict):
            raise PersonalDataError("is not a JSON object of personal fields")
        return cls.of(document)


def _explain(exc: ValidationError) -> str:
    """Which fields are wrong and why, never their values (pydantic quotes inputs)."""
    known = ", ".join(f.value for f in PersonalField)
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "the object"
        if error["type"] == "extra_forbidden":
            problems.append(f"{where}: not a personal field (known: {known})")
        elif error["type"] == "string_too_long":
            problems.append(f"{where}: longer than {MAX_FIELD_CHARS} characters")
        elif error["type"] == "string_too_short":
            problems.append(f"{where}: empty (leave the field out instead)")
        elif error["type"] == "string_type":
            problems.append(f"{where}: must be text")
        else:
            problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)
