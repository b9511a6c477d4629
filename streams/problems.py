"""RFC 9457 problem documents in SafePassage's one dialect, for every HTTP edge.

``type`` is ``urn:safepassage:problem:<slug>`` (the slugs are listed in
docs/intake-api.md), ``title`` is fixed per kind of problem, ``status``
repeats the HTTP status and ``detail`` says what to do. It lives below the
edges so that every package can name a problem, and is framework-free: each
edge renders :meth:`Problem.body` and :attr:`Problem.headers` itself. Nothing
here may carry personal data, not even the request path (it can hold an id).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "BEARER_CHALLENGE",
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE_BASE",
    "FieldError",
    "Problem",
    "forbidden",
    "invalid_key",
    "invalid_path_parameter",
    "problem_type",
    "status_unavailable",
    "unauthenticated",
    "unknown_survivor",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:safepassage:problem:"
BEARER_CHALLENGE = 'Bearer realm="safepassage"'
"""``WWW-Authenticate`` of a request without a usable bearer key (RFC 6750)."""


def problem_type(slug: str) -> str:
    """The ``type`` URI of a problem slug, e.g. ``urn:safepassage:problem:forbidden``."""
    return PROBLEM_TYPE_BASE + slug


@dataclass(frozen=True)
class FieldError:
    """One field-level problem: where (JSON Pointer, or ``path:<name>``) and what."""

    location: str
    message: str


@dataclass(frozen=True)
class Problem:
    """One error answer: its status, kind (slug), fixed title, and what to do about it."""

    status: int
    slug: str
    title: str
    detail: str
    errors: tuple[FieldError, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    """HTTP headers that go with the answer (``WWW-Authenticate``, ``Retry-After``)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Extension members of the document."""

    @property
    def type(self) -> str:
        return problem_type(self.slug)

    def body(self) -> dict[str, Any]:
        """The problem document, without ``instance``: a request path can carry an id."""
        document: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            document["errors"] = [asdict(error) for error in self.errors]
        document.update(self.extra)
        return document


def unauthenticated() -> Problem:
    return Problem(
        401,
        "unauthenticated",
        "Authentication required",
        "send an API key as Authorization: Bearer <key>",
        headers={"WWW-Authenticate": BEARER_CHALLENGE},
    )


def invalid_key() -> Problem:
    return Problem(
        401,
        "unauthenticated",
        "Invalid API key",
        "the API key is unknown or was revoked",
        headers={"WWW-Authenticate": BEARER_CHALLENGE + ', error="invalid_token"'},
    )


def forbidden(detail: str, errors: tuple[FieldError, ...] = ()) -> Problem:
    """403: ``detail`` names the rule, never the caller."""
    return Problem(403, "forbidden", "Not allowed for this principal", detail, errors)


def invalid_path_parameter(name: str, message: str, detail: str) -> Problem:
    return Problem(
        400,
        "invalid-request",
        "Invalid request",
        detail,
        errors=(FieldError(f"path:{name}", message),),
    )


def status_unavailable(retry_after_s: int) -> Problem:
    """503: the status store has not caught up with ``case-status.v1`` yet."""
    return Problem(
        503,
        "status-unavailable",
        "Status not available yet",
        "the status store is still reading the case-status topic; retry shortly",
        headers={"Retry-After": str(retry_after_s)},
    )


def keys_unavailable(retry_after_s: int) -> Problem:
    """503: the key directory has not caught up with ``survivor-keys.v1`` yet."""
    return Problem(
        503,
        "keys-unavailable",
        "Key service not ready",
        "the key directory is still reading the survivor-keys topic; retry shortly",
        headers={"Retry-After": str(retry_after_s)},
    )


def survivor_erased() -> Problem:
    """410: the survivor's data key was destroyed (crypto-shredding)."""
    return Problem(
        410,
        "survivor-erased",
        "Survivor erased",
        "this survivor's data key was destroyed; a new case needs a new survivor id",
    )


def unknown_survivor() -> Problem:
    """404: the id is not quoted back."""
    return Problem(404, "unknown-survivor", "Unknown survivor", "no case for this survivor id")
