"""The ACL matrix: from a declarative file to the broker's ACLs, idempotently.

The file (:data:`DEFAULT_MATRIX`, or an operator's own) names roles, what
each role may read, write or own, and the principals that hold each role.
:func:`grants` turns it into the set of ALLOW bindings the cluster should
hold; :func:`plan` compares that with what it holds (pure, unit-tested);
:func:`apply` adds the missing bindings and removes the ALLOW bindings the
file does not grant, so a grant deleted from the file is revoked on the
cluster. DENY bindings are never removed (that would widen access): they
are reported. The broker denies everything no ACL allows, so this file is
the whole of who may do what.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streams.clients import admin_client
from streams.exceptions import StreamsError
from streams.settings import KafkaSettings
from streams.topics import TopicSpec, party_spec

__all__ = [
    "DEFAULT_MATRIX",
    "AclMatrixError",
    "AclPlan",
    "Grant",
    "Matrix",
    "PrincipalSpec",
    "RoleSpec",
    "apply",
    "grants",
    "load_matrix",
    "observe",
    "party_topics",
    "plan",
]

DEFAULT_MATRIX = Path(__file__).with_name("acl_matrix.yaml")
PARTY_ROLES = frozenset({"agency", "provider"})
"""Roles held by a party, whose principals carry the party's own id."""
_PARTY_SOURCES = {"agency": "/agencies/", "provider": "/providers/"}

_PRINCIPAL = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_TIMEOUT_S = 30.0


class AclMatrixError(StreamsError):
    """The ACL file is invalid, or the cluster refused to read or change its ACLs."""


class RoleSpec(BaseModel):
    """What one role may do; every name a template (see the file's header)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    own: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


class PrincipalSpec(BaseModel):
    """One principal: its role and, for a party, its agency or provider id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str
    id: str | None = Field(default=None, pattern=_ID.pattern)


class Matrix(BaseModel):
    """The whole file: roles and the principals holding them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: dict[str, RoleSpec]
    principals: dict[str, PrincipalSpec]

    @model_validator(mode="after")
    def _consistent(self) -> Matrix:
        for name, principal in self.principals.items():
            if not _PRINCIPAL.fullmatch(name) or name.startswith("kafka-node-"):
                raise ValueError(f"principal {name!r}: not a usable principal name")
            if principal.role not in self.roles:
                raise ValueError(f"principal {name!r}: unknown role {principal.role!r}")
            if principal.role in PARTY_ROLES and principal.id is None:
                raise ValueError(f"principal {name!r}: a {principal.role} needs its id")
        return self


@dataclass(frozen=True, order=True)
class Grant:
    """One ACL binding, in our words (the host is always ``*``).

    ``resource`` and ``pattern`` are Kafka's names in lower case (``topic``,
    ``group``, ``broker``, ``transactional_id``; ``literal``, ``prefixed``).
    """

    principal: str
    resource: str
    pattern: str
    name: str
    operation: str
    permission: str = "ALLOW"

    def describe(self) -> str:
        pattern = "prefix " if self.pattern == "prefixed" else ""
        verb = "DENY " if self.permission != "ALLOW" else ""
        return f"{self.principal}: {verb}{self.operation} {self.resource} {pattern}{self.name}"


@dataclass(frozen=True)
class AclPlan:
    """What :func:`apply` does: bindings to add, bindings to remove, DENY bindings kept."""

    add: tuple[Grant, ...]
    remove: tuple[Grant, ...]
    kept_denials: tuple[Grant, ...]

    @property
    def in_sync(self) -> bool:
        return not self.add and not self.remove


def load_matrix(path: Path | None = None) -> Matrix:
    """The matrix in ``path`` (the platform's default file if None), or a clear error."""
    path = path or DEFAULT_MATRIX
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Matrix.model_validate(document)
    except OSError as exc:
        raise AclMatrixError(f"cannot read the ACL file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise AclMatrixError(f"{path} is not YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise AclMatrixError(f"{path}: {problems}") from None


def grants(matrix: Matrix, settings: KafkaSettings) -> frozenset[Grant]:
    """Every ALLOW binding the matrix asks for, names filled in for ``settings``."""
    out: set[Grant] = set()
    for name, principal in sorted(matrix.principals.items()):
        role = matrix.roles[principal.role]
        values = {
            "ns": settings.topic_namespace,
            "client_id": settings.client_id,
            "id": principal.id,
        }
        entries = [
            *(("topic", template, "READ") for template in role.read),
            *(("topic", template, "WRITE") for template in role.write),
            *(("topic", template, "ALL") for template in role.own),
            *(("group", template, "READ") for template in role.groups),
        ]
        for resource, template, operation in entries:
            filled = _fill(template, values, name)
            pattern = "prefixed" if filled.endswith("*") else "literal"
            out.add(Grant(name, resource, pattern, filled.rstrip("*"), operation))
    return frozenset(out)


def party_topics(matrix: Matrix, settings: KafkaSettings) -> tuple[TopicSpec, ...]:
    """The own inbound topic of every party principal (created with its grants)."""
    return tuple(
        party_spec(settings, f"{_PARTY_SOURCES[principal.role]}{principal.id}")
        for _, principal in sorted(matrix.principals.items())
        if principal.role in PARTY_ROLES
    )


def _fill(template: str, values: Mapping[str, str | None], principal: str) -> str:
    try:
        filled = template.format_map(_Strict(values))
    except (KeyError, ValueError) as exc:
        raise AclMatrixError(f"principal {principal!r}: bad name template {template!r}") from exc
    if "*" in filled[:-1] or filled in {"", "*"}:
        raise AclMatrixError(
            f"principal {principal!r}: {template!r} must be a name or a prefix ending in '*'"
        )
    return filled


class _Strict(dict[str, str | None]):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)

    def __getitem__(self, key: str) -> str:
        value = super().__getitem__(key)
        if value is None:
            raise KeyError(key)
        return value


def plan(desired: Iterable[Grant], observed: Iterable[Grant]) -> AclPlan:
    """The bindings to add and to remove so that the cluster grants exactly ``desired``."""
    wanted, present = set(desired), set(observed)
    denials = {grant for grant in present if grant.permission != "ALLOW"}
    return AclPlan(
        add=tuple(sorted(wanted - present)),
        remove=tuple(sorted(present - wanted - denials)),
        kept_denials=tuple(sorted(denials)),
    )


def _binding(grant: Grant) -> AclBinding:
    return AclBinding(*_fields(grant))


def _filter(grant: Grant) -> AclBindingFilter:
    """The filter that matches exactly the binding of ``grant`` (what delete_acls takes)."""
    return AclBindingFilter(*_fields(grant))


def _fields(
    grant: Grant,
) -> tuple[ResourceType, str, ResourcePatternType, str, str, AclOperation, AclPermissionType]:
    return (
        ResourceType[grant.resource.upper()],
        grant.name,
        ResourcePatternType[grant.pattern.upper()],
        f"User:{grant.principal}",
        "*",
        AclOperation[grant.operation],
        AclPermissionType[grant.permission],
    )


def _grant(binding: AclBinding) -> Grant:
    principal = binding.principal.removeprefix("User:")
    return Grant(
        principal,
        _name_of(binding.restype).lower(),
        _name_of(binding.resource_pattern_type).lower(),
        binding.name,
        _name_of(binding.operation),
        _name_of(binding.permission_type),
    )


def _name_of(value: Enum | str | int) -> str:
    return value.name if isinstance(value, Enum) else str(value)


def observe(settings: KafkaSettings) -> frozenset[Grant]:
    """Every ACL binding the cluster holds (the caller must be allowed to describe them)."""
    admin = admin_client(settings)
    any_name: Any = None  # None matches any name, principal and host (the stubs miss it)
    every = AclBindingFilter(
        ResourceType.ANY,
        any_name,
        ResourcePatternType.ANY,
        any_name,
        any_name,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    try:
        bindings = admin.describe_acls(every, request_timeout=_TIMEOUT_S).result(_TIMEOUT_S)
    except KafkaException as exc:
        raise AclMatrixError(f"cannot list the cluster's ACLs: {exc.args[0]}") from None
    return frozenset(_grant(binding) for binding in bindings)


def apply(settings: KafkaSettings, matrix: Matrix) -> AclPlan:
    """Make the cluster's ALLOW bindings those of ``matrix``; returns what was done."""
    desired = grants(matrix, settings)
    the_plan = plan(desired, observe(settings))
    admin = admin_client(settings)
    failures: list[str] = []
    if the_plan.add:
        results = admin.create_acls(
            [_binding(grant) for grant in the_plan.add], request_timeout=_TIMEOUT_S
        )
        failures += _failures(results)
    if the_plan.remove:
        removed = admin.delete_acls(
            [_filter(grant) for grant in the_plan.remove], request_timeout=_TIMEOUT_S
        )
        failures += _failures(removed)
    if failures:
        raise AclMatrixError("the cluster refused: " + "; ".join(failures))
    _await_in_effect(settings, desired)
    return the_plan


def _await_in_effect(settings: KafkaSettings, desired: frozenset[Grant]) -> None:
    """Return once the broker answers with the new ACLs.

    The controller commits ACL changes to the metadata log before it answers
    ``CreateAcls``/``DeleteAcls``; each broker applies them a moment later.
    A client started right after :func:`apply` (the router, by ``safepassage
    run``) must not meet the old ACLs.
    """
    deadline = time.monotonic() + _TIMEOUT_S
    while not plan(desired, observe(settings)).in_sync:
        if time.monotonic() > deadline:
            raise AclMatrixError(f"the cluster did not show the new ACLs within {_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


def _failures(results: Mapping[Any, Future[Any]]) -> list[str]:
    failed = []
    for binding, future in results.items():
        try:
            future.result(timeout=_TIMEOUT_S)
        except KafkaException as exc:
            failed.append(f"{_grant(binding).describe()} ({exc.args[0]})")
    return failed
