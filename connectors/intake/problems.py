"""Error answers as RFC 9457 ``application/problem+json`` documents.

Every answer other than success goes through :class:`ProblemError`, which
carries a :class:`streams.problems.Problem`: the one dialect of every HTTP
edge (stable ``type`` URNs, listed in docs/intake-api.md; field errors
located by JSON Pointer). :func:`install_error_handlers` makes FastAPI's own
errors (422, 404, 405, unexpected exceptions, a failing idempotency store)
follow the same shape; bad input is always a 4xx, never a 500, and nothing
here quotes request data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors.exceptions import ConnectorsError, IdempotencyStoreError
from streams.logs import get_logger
from streams.problems import PROBLEM_MEDIA_TYPE, FieldError, Problem

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "FieldError",
    "ProblemError",
    "broker_unavailable",
    "install_error_handlers",
    "invalid_events",
    "json_pointer",
    "malformed",
    "pydantic_errors",
]

_log = get_logger("connectors.intake")


class ProblemError(ConnectorsError):
    """An HTTP answer other than success: a :class:`~streams.problems.Problem`, raised.

    Raised anywhere in request handling; the exception handler renders it.
    ``slug`` names the problem type (``urn:safepassage:problem:<slug>``);
    docs/intake-api.md lists them all.
    """

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Describe the problem; nothing here may contain personal data."""
        super().__init__(detail)
        self.problem = Problem(
            status, slug, title, detail, tuple(errors), dict(headers or {}), dict(extra or {})
        )

    @classmethod
    def of(cls, problem: Problem) -> ProblemError:
        """A problem of :mod:`streams.problems`, to raise as it is."""
        return cls(
            problem.status,
            problem.slug,
            problem.title,
            problem.detail,
            errors=problem.errors,
            headers=problem.headers,
            extra=problem.extra,
        )

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document."""
        return self.problem.body(instance)

    def response(self, instance: str | None = None) -> JSONResponse:
        """The HTTP response."""
        return JSONResponse(
            self.problem.body(instance),
            status_code=self.problem.status,
            media_type=PROBLEM_MEDIA_TYPE,
            headers=dict(self.problem.headers),
        )


def invalid_events(errors: Sequence[FieldError]) -> ProblemError:
    count = len(errors)
    return ProblemError(
        400,
        "invalid-event",
        "Invalid CloudEvent",
        f"{count} problem{'s' if count != 1 else ''} with the request body; see errors",
        errors=errors,
    )


def malformed(detail: str, location: str = "") -> ProblemError:
    return ProblemError(
        400,
        "malformed-request",
        "Malformed request",
        detail,
        errors=[FieldError(location, detail)],
    )


def broker_unavailable(detail: str, **extra: Any) -> ProblemError:
    return ProblemError(
        503,
        "broker-unavailable",
        "Kafka is unavailable",
        detail,
        headers={"Retry-After": "5"},
        extra=extra,
    )


def json_pointer(parts: Sequence[str | int]) -> str:
    """A JSON Pointer (RFC 6901) from path segments."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def pydantic_errors(error: ValidationError, prefix: str) -> list[FieldError]:
    """Field errors of a pydantic failure, located under ``prefix``; no input values."""
    return [
        FieldError(prefix + json_pointer(item["loc"]), item["msg"])
        for item in error.errors(include_input=False, include_url=False, include_context=False)
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Every error answer is problem+json; FastAPI's 422 becomes a 400."""

    def log_rejection(request: Request, error: ProblemError) -> None:
        problem = error.problem
        level = "warning" if problem.status >= 500 else "info"
        getattr(_log, level)(
            "intake.rejected",
            method=request.method,
            route=request.scope.get("route").path  # type: ignore[union-attr]
            if request.scope.get("route") is not None
            else None,
            status=problem.status,
            problem=problem.slug,
            errors=len(problem.errors),
        )

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)  # noqa: S101 - registered for Problem only
        log_rejection(request, exc)
        return exc.response(request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        errors = []
        for item in exc.errors():
            where, *rest = item.get("loc", ()) or ("request",)
            location = (
                json_pointer(rest) if where == "body" else f"{where}:{'/'.join(map(str, rest))}"
            )
            errors.append(FieldError(location, str(item.get("msg", "invalid"))))
        problem = ProblemError(
            400,
            "invalid-request",
            "Invalid request",
            "the request's parameters are invalid; see errors",
            errors=errors,
        )
        log_rejection(request, problem)
        return problem.response(request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        slugs = {404: "not-found", 405: "method-not-allowed"}
        problem = ProblemError(
            exc.status_code,
            slugs.get(exc.status_code, "http-error"),
            str(exc.detail) if exc.status_code not in slugs else _status_title(exc.status_code),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )
        return problem.response(request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # The message of a foreign exception could quote request data: type only.
        _log.error("intake.internal_error", error=type(exc).__name__, path=request.url.path)
        problem = ProblemError(500, "internal", "Internal error", "the error was logged")
        return problem.response(request.url.path)

    async def on_store(request: Request, exc: Exception) -> Response:
        _log.error("intake.store_failed", error=str(exc))
        problem = ProblemError(
            503,
            "state-unavailable",
            "Idempotency store unavailable",
            "the service cannot record events right now; nothing was published",
            headers={"Retry-After": "5"},
        )
        return problem.response(request.url.path)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(IdempotencyStoreError, on_store)
    app.add_exception_handler(Exception, on_unexpected)


def _status_title(status: int) -> str:
    return HTTPStatus(status).phrase
