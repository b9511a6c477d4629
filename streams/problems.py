"""RFC 9457 problem documents in SafePassage's one dialect, for every HTTP edge.

Every HTTP answer other than success (the intake API's, the SDKs' reading
of them) is the same document: ``type`` is ``urn:safepassage:problem:<slug>``
(the slugs are listed in docs/intake-api.md), ``title`` is fixed per kind of
problem, ``status`` repeats the HTTP status and ``detail`` says what to do.

It lives here, below the edges, so that every package can name a problem
(``processors`` may not import ``connectors``). It is framework-free on
purpose: each edge renders :meth:`Problem.body` and :attr:`Problem.headers`
with its own response class. Nothing here may carry personal data: titles,
rules and ids only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"location": self.location, "message": self.message}


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
        """The ``type`` URI."""
        return problem_type(self.slug)

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document; ``instance`` is the request's path."""
        document: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            document["instance"] = instance
        if self.errors:
            document["errors"] = [error.to_dict() for error in self.errors]
        document.update(self.extra)
        return document


def unauthenticated() -> Problem:
    """401: the request carries no bearer key."""
    return Problem(
        401,
        "unauthenticated",
        "Authentication required",
        "send an API key as Authorization: Bearer <key>",
        headers={"WWW-Authenticate": BEARER_CHALLENGE},
    )


def invalid_key() -> Problem:
    """401: the bearer key is unknown or revoked."""
    return Problem(
        401,
        "unauthenticated",
        "Invalid API key",
        "the API key is unknown or was revoked",
        headers={"WWW-Authenticate": BEARER_CHALLENGE + ', error="invalid_token"'},
    )


def forbidden(detail: str) -> Problem:
    """403: the caller's role may not do this (``detail`` names the rule, not the caller)."""
    return Problem(403, "forbidden", "Not allowed for this principal", detail)


def invalid_path_parameter(name: str, message: str, detail: str) -> Problem:
    """400: a path parameter is invalid, located as ``path:<name>``."""
    return Problem(
        400,
        "invalid-request",
        "Invalid request",
        detail,
        errors=(FieldError(f"path:{name}", message),),
    )


def status_unavailable(retry_after_s: int) -> Problem:
    """503: the status store has not caught up with ``case-status.v1`` yet; retry shortly."""
    return Problem(
        503,
        "status-unavailable",
        "Status not available yet",
        "the status store is still reading the case-status topic; retry shortly",
        headers={"Retry-After": str(retry_after_s)},
    )


def unknown_survivor() -> Problem:
    """404: no case is known for the survivor id (the id is not quoted back)."""
    return Problem(404, "unknown-survivor", "Unknown survivor", "no case for this survivor id")
