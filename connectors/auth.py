"""Bearer API keys of the intake API: who is calling, and what their role lets them do.

**Keys.** ``sp_<role>_<43 base64url characters>``: 32 random bytes after a
prefix that names the role, so a person (and a secret scanner) can tell what
a leaked key opens. The prefix and 8 random characters form the *key id*
(``sp_agency_AbCdEfGh``), stored and logged to tell keys apart unseen.

**Storage.** The keys file (``SAFEPASSAGE_API_KEYS_FILE``, YAML) holds only
``sha256:<hex>`` digests. A slow hash (scrypt, argon2) protects low-entropy
passwords against guessing; a 256-bit random key cannot be guessed whatever
the hash, and a slow one would cost CPU per request, a lever for exhausting
the service. The presented key's digest is compared with *every* stored one
(:func:`hmac.compare_digest`, no early stop), so timing reveals nothing.

**Roles.** ``agency`` principals publish :data:`~streams.contract.AGENCY_EVENTS`
under their own ``agency_id``, ``provider`` principals
:data:`~streams.contract.PROVIDER_ANSWERS` under their own ``provider_id``;
``operator`` principals read survivor status only; ``directory-admin``
principals manage the provider directory (``/v1/providers``) and nothing
else, and a provider reports its own capacity there. Each check is a plain
function of a principal and an event, so the role matrix is unit-tested
without HTTP.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self
from uuid import UUID

import yaml
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, model_validator

from connectors.exceptions import ApiKeysError, ForbiddenError
from schemas.models import Event, ReferralCancelled
from schemas.types import Actor, Identifier
from streams.contract import AGENCY_EVENTS, PROVIDER_ANSWERS
from streams.logs import get_logger

__all__ = [
    "KEY_PREFIX",
    "ApiKeyEntry",
    "ApiKeyStore",
    "Principal",
    "Role",
    "add_key",
    "authorize_capacity_report",
    "authorize_directory_change",
    "authorize_directory_read",
    "authorize_event",
    "authorize_event_type",
    "authorize_source",
    "authorize_status_read",
    "generate_key",
    "hash_key",
    "key_id_of",
    "load_keys",
    "may_read_status_of",
]

KEY_PREFIX = "sp"
_KEY_BYTES = 32
_KEY_ID_CHARS = 8
_HASH_SCHEME = "sha256:"

_log = get_logger(__name__)


class Role(StrEnum):
    """What a principal is; decides which requests it may make."""

    AGENCY = "agency"
    PROVIDER = "provider"
    OPERATOR = "operator"
    DIRECTORY_ADMIN = "directory-admin"
    """Registers and updates providers, imports and exports the directory (HSDS)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a name and role from the keys file, never the key itself."""

    name: str
    role: Role
    key_id: str
    provider_id: UUID | None = None
    """The provider a ``provider`` principal answers for."""
    agency_id: str | None = None
    """The agency an ``agency`` principal publishes for (the events' ``agency_id``)."""

    @property
    def source_root(self) -> str:
        """The CloudEvents ``source`` this principal publishes under.

        The organisation its key speaks for: ``/agencies/<agency_id>``,
        ``/providers/<provider_id>`` (the SDKs' default sources),
        ``/operators/<name>`` and ``/directory-admins/<name>`` (the source of the
        directory events the intake publishes for a directory administrator).
        """
        if self.role is Role.AGENCY and self.agency_id is not None:
            return f"/agencies/{self.agency_id}"
        if self.role is Role.PROVIDER and self.provider_id is not None:
            return f"/providers/{self.provider_id}"
        return f"/{self.role.value}s/{self.name}"


KeyHash = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
KeyId = Annotated[
    str,
    StringConstraints(pattern=r"^sp_(agency|provider|operator|directory-admin)_[A-Za-z0-9_-]{8}$"),
]


class ApiKeyEntry(BaseModel):
    """One line of the keys file: a principal, its role and the digest of one of its keys.

    A principal may have several entries (one per key), which is how keys
    are rotated: add the new key, move the callers over, delete the old line.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    principal: Identifier
    """A name without spaces (it is logged), e.g. ``nl-police-intake``."""
    role: Role
    key_hash: KeyHash
    key_id: KeyId | None = None
    provider_id: UUID | None = None
    agency_id: Identifier | None = None
    created_at: datetime | None = None

    @model_validator(mode="after")
    def _ids_fit_role(self) -> Self:
        """A provider without a provider id could answer for anyone; likewise an agency."""
        if self.role is Role.PROVIDER:
            if self.provider_id is None:
                raise ValueError("a provider needs provider_id")
            if self.agency_id is not None:
                raise ValueError("a provider has no agency_id")
        elif self.role is Role.AGENCY:
            if self.agency_id is None:
                raise ValueError("an agency needs agency_id")
            if self.provider_id is not None:
                raise ValueError("an agency has no provider_id")
        elif self.provider_id is not None or self.agency_id is not None:
            raise ValueError(f"a {self.role.value} has neither provider_id nor agency_id")
        return self

    def principal_for(self) -> Principal:
        """The principal a request authenticated with this entry's key acts as."""
        return Principal(
            name=self.principal,
            role=self.role,
            key_id=self.key_id or "(unnamed key)",
            provider_id=self.provider_id,
            agency_id=self.agency_id,
        )


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[ApiKeyEntry]


# ------------------------------------------------------------------------- keys


def generate_key(role: Role) -> str:
    """A new random key for ``role``: ``sp_<role>_`` and 43 base64url characters."""
    return f"{KEY_PREFIX}_{role.value}_{secrets.token_urlsafe(_KEY_BYTES)}"


def hash_key(key: str) -> str:
    """The stored form of a key: ``sha256:`` and the hex digest of its UTF-8 bytes."""
    return _HASH_SCHEME + hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of(key: str) -> str | None:
    """The loggable identifier of a well-formed key (prefix + 8 characters), else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or parts[1] not in {role.value for role in Role}:
        return None
    if len(parts[2]) < _KEY_ID_CHARS:
        return None
    return f"{parts[0]}_{parts[1]}_{parts[2][:_KEY_ID_CHARS]}"


def _problems(error: ValidationError, whole: str) -> str:
    """Where the entry is wrong, by position and field: never the values (a hash is a secret's kin).

    ``whole`` names a problem of no one field (the file, or the entry being added).
    """
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        location = item["loc"]
        if len(location) >= 2 and location[0] == "keys" and isinstance(location[1], int):
            where = f"entry {location[1] + 1}"
            field = ".".join(str(part) for part in location[2:])
            where = f"{where}, {field}" if field else where
        else:
            where = ".".join(str(part) for part in location) or whole
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


def load_keys(path: Path) -> tuple[ApiKeyEntry, ...]:
    """Every entry of the keys file, or :class:`ApiKeysError` saying what is wrong and where."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ApiKeysError(
            f"API keys file {path} does not exist; create a key with "
            "`safepassage keys add --role ... --principal ...` "
            "(SAFEPASSAGE_API_KEYS_FILE names the file)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ApiKeysError(f"API keys file {path} cannot be read ({type(exc).__name__})") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ApiKeysError(f"API keys file {path} is not valid YAML{where}") from None
    if document is None:
        document = {"keys": []}
    if not isinstance(document, dict):
        raise ApiKeysError(f"API keys file {path} must be a mapping with a 'keys' list")
    try:
        return tuple(_KeysFile.model_validate(document).keys)
    except ValidationError as exc:
        raise ApiKeysError(f"API keys file {path} is invalid: {_problems(exc, '(file)')}") from None


_HEADER = """\
# SafePassage intake API keys. Only SHA-256 digests of keys are stored here;
# a key is shown once, by `safepassage keys add`. Delete an entry to revoke
# its key (the intake API reloads this file within seconds).
"""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside the file, so that two `keys add` never lose an entry."""
    lock_path = path.with_name(path.name + ".lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_atomically(path: Path, entries: Sequence[ApiKeyEntry]) -> None:
    """Replace the file in one rename: a reader never sees half a file. Mode 0600."""
    document = {"keys": [entry.model_dump(mode="json", exclude_none=True) for entry in entries]}
    text = _HEADER + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        Path(temporary).chmod(0o600)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_key(
    path: Path,
    *,
    role: Role,
    principal: str,
    provider_id: UUID | None = None,
    agency_id: str | None = None,
    now: datetime | None = None,
) -> tuple[str, ApiKeyEntry]:
    """Create a key for ``principal``, store its digest in ``path``; the key and its entry.

    The key is returned once and never stored. Existing entries are kept as
    they are; an existing file that does not load is left untouched and
    reported, never overwritten.
    """
    key = generate_key(role)
    try:
        entry = ApiKeyEntry(
            principal=principal,
            role=role,
            key_hash=hash_key(key),
            key_id=key_id_of(key),
            provider_id=provider_id,
            agency_id=agency_id,
            created_at=now,
        )
    except ValidationError as exc:
        raise ApiKeysError(f"cannot add this key: {_problems(exc, 'entry')}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        existing = load_keys(path) if path.exists() else ()
        for other in existing:
            if other.principal == principal and other.role is not role:
                raise ApiKeysError(
                    f"principal {principal!r} already has role {other.role.value}; "
                    "use another principal name for another role"
                )
        _write_atomically(path, (*existing, entry))
    return key, entry


# ------------------------------------------------------------------------ store


class ApiKeyStore:
    """The loaded keys file, reloaded when it changes, answering "whose key is this?".

    Reloading lets ``safepassage keys add`` and revocations (deleting an entry)
    take effect without restarting the service. A file that becomes invalid
    is reported in the log and the last good set of keys stays in use; the
    service never falls open.
    """

    def __init__(self, path: Path, *, reload_interval_s: float = 2.0) -> None:
        """Load ``path`` now: a missing or invalid file is an :class:`ApiKeysError` at start."""
        self.path = path
        self._reload_interval_s = reload_interval_s
        self._lock = threading.Lock()
        self._entries = load_keys(path)
        self._stamp = self._file_stamp()
        self._checked = time.monotonic()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._reload_interval_s:
            return
        with self._lock:
            if now - self._checked < self._reload_interval_s:
                return
            self._checked = now
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            try:
                entries = load_keys(self.path)
            except ApiKeysError as exc:
                _log.error(
                    "api_keys.reload_failed", reason=str(exc), keys_in_use=len(self._entries)
                )
                return
            self._entries, self._stamp = entries, stamp
            _log.info("api_keys.reloaded", keys=len(entries))

    @property
    def entries(self) -> tuple[ApiKeyEntry, ...]:
        """The entries in use right now."""
        self._maybe_reload()
        return self._entries

    def authenticate(self, key: str) -> Principal | None:
        """The principal whose key this is, or None (constant time in the matching entry)."""
        digest = hash_key(key).encode("ascii")
        found: ApiKeyEntry | None = None
        for entry in self.entries:
            if hmac.compare_digest(digest, entry.key_hash.encode("ascii")) and found is None:
                found = entry
        return found.principal_for() if found is not None else None


# ------------------------------------------------------------------ authorization

_PUBLISHES = {
    Role.AGENCY: ("agencies publish", AGENCY_EVENTS),
    Role.PROVIDER: ("providers answer with", PROVIDER_ANSWERS),
}


def authorize_event_type(principal: Principal, event_type: str, location: str = "/type") -> None:
    """Whether ``principal`` may publish events of this type at all; :class:`ForbiddenError` if not.

    Checked before the event's data is even validated, so that a caller
    learns nothing about the models of events it may not send.
    """
    if principal.role is Role.OPERATOR:
        raise ForbiddenError("operators read status and do not publish events")
    if principal.role is Role.DIRECTORY_ADMIN:
        raise ForbiddenError("directory administrators write the directory through /v1/providers")
    publish, allowed = _PUBLISHES[principal.role]
    if event_type not in allowed:
        raise ForbiddenError(f"{publish} {', '.join(sorted(allowed))}; not {event_type}", location)


def authorize_source(principal: Principal, source: str, location: str = "/source") -> None:
    """Whether ``principal`` may publish under ``source``; :class:`ForbiddenError` if not.

    The source names the sender, so it must be the principal's own,
    exactly (:attr:`Principal.source_root`): no caller publishes as another,
    and since idempotency keys are (source, id), no caller can claim
    another's ids. Not a path below it either: ids may contain ``/``, so
    ``/agencies/a/b`` could be agency ``a``'s system ``b`` or agency ``a/b``,
    and the router reads the sender from the source.
    """
    root = principal.source_root
    if source != root:
        raise ForbiddenError(f"this caller publishes under the source {root}", location)


def authorize_event(principal: Principal, event: Event, pointer: str = "/data") -> None:
    """Whether ``principal`` may publish this very event; :class:`ForbiddenError` if not.

    Beyond the type: a provider answers only for its own ``provider_id``; an
    agency publishes only under its own ``agency_id`` (where the event names
    one) and cancels referrals only as ``cancelled_by: AGENCY``, so it cannot
    pose as the system or an operator.
    """
    authorize_event_type(principal, event.event_type)
    if principal.role is Role.PROVIDER:
        if getattr(event, "provider_id", None) != principal.provider_id:
            raise ForbiddenError(
                "a provider answers only for its own provider_id", f"{pointer}/provider_id"
            )
        return
    agency_id = getattr(event, "agency_id", None)
    if agency_id is not None and agency_id != principal.agency_id:
        raise ForbiddenError(
            "an agency publishes only under its own agency_id", f"{pointer}/agency_id"
        )
    if isinstance(event, ReferralCancelled) and event.cancelled_by is not Actor.AGENCY:
        raise ForbiddenError(
            "an agency cancels referrals as cancelled_by AGENCY", f"{pointer}/cancelled_by"
        )


def authorize_status_read(principal: Principal) -> None:
    """Operators and agencies read survivor status; nobody else (providers get offers)."""
    if principal.role not in (Role.OPERATOR, Role.AGENCY):
        raise ForbiddenError(
            "operators and agencies read survivor status; providers do not, nor does anyone else"
        )


def may_read_status_of(principal: Principal, agencies: Set[str]) -> bool:
    """Whether ``principal`` may see the status of a survivor ``agencies`` may act on.

    ``agencies`` are the owner and the agencies the case is shared with at
    the instant of reading (:meth:`processors.status.StatusRecord.agencies_at`).
    Operators see every case; an agency only those of its survivors and of
    the cases shared with it (a record without an owner, from before owners
    were recorded, is no agency's). Others see none.
    """
    if principal.role is Role.OPERATOR:
        return True
    return (
        principal.role is Role.AGENCY
        and principal.agency_id is not None
        and principal.agency_id in agencies
    )


# ------------------------------------------------------------------- directory


def authorize_directory_change(principal: Principal) -> None:
    """Registering, updating, importing providers: directory administrators only.

    The directory decides where survivors are sent, so writing it is a role
    of its own, held by no agency, provider or operator.
    """
    if principal.role is not Role.DIRECTORY_ADMIN:
        raise ForbiddenError("only directory administrators register, update or import providers")


def authorize_directory_read(principal: Principal, provider_id: UUID | None = None) -> None:
    """Who reads the directory: administrators and operators all of it, a provider its own entry.

    ``provider_id`` is the entry read; None for the list and the export.
    Agencies do not browse providers: the router chooses for them.
    """
    if principal.role in (Role.DIRECTORY_ADMIN, Role.OPERATOR):
        return
    if principal.role is Role.PROVIDER:
        if provider_id is not None and principal.provider_id == provider_id:
            return
        raise ForbiddenError("a provider reads only its own directory entry")
    raise ForbiddenError("directory administrators and operators read the directory")


def authorize_capacity_report(principal: Principal, provider_id: UUID | None) -> None:
    """A capacity report: the provider itself (its key's ``provider_id``) or an administrator.

    ``provider_id`` None (a path that is no id) is nobody's own.
    """
    if principal.role is Role.DIRECTORY_ADMIN:
        return
    if principal.role is Role.PROVIDER:
        if provider_id is not None and principal.provider_id == provider_id:
            return
        raise ForbiddenError("a provider reports only its own capacity")
    raise ForbiddenError("a provider reports its own capacity; a directory administrator any")
