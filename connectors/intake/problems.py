"""Error answers as RFC 9457 ``application/problem+json`` documents.

Every answer other than success is a :class:`ProblemError` carrying a
:class:`streams.problems.Problem`, the one dialect of every HTTP edge.
:func:`install_error_handlers` makes FastAPI's own errors (422, 404, 405,
unexpected exceptions, a failing idempotency store) take the same shape; bad
input is always a 4xx, never a 500, and nothing here quotes request data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
    "ProblemError",
    "broker_unavailable",
    "install_error_handlers",
    "json_pointer",
    "malformed",
    "pydantic_errors",
]

_log = get_logger("connectors.intake")


class _AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: a problem document always encodes.

    A detail can name what the caller sent (a field, an HSDS entry's id); if
    that holds text no UTF-8 encoder takes, starlette's rendering would raise
    and the answer would become a 500.
    """

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode("ascii")


class ProblemError(ConnectorsError):
    """A :class:`~streams.problems.Problem`, raised anywhere in request handling."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem

    def response(self) -> JSONResponse:
        return _AsciiJSONResponse(
            self.problem.body(),
            status_code=self.problem.status,
            media_type=PROBLEM_MEDIA_TYPE,
            headers=dict(self.problem.headers),
        )


def malformed(detail: str) -> ProblemError:
    return ProblemError(
        Problem(400, "malformed-request", "Malformed request", detail, (FieldError("", detail),))
    )


def broker_unavailable(detail: str, **extra: Any) -> ProblemError:
    return ProblemError(
        Problem(
            503,
            "broker-unavailable",
            "Kafka is unavailable",
            detail,
            headers={"Retry-After": "5"},
            extra=extra,
        )
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

    def rejected(request: Request, error: ProblemError) -> Response:
        problem = error.problem
        route = request.scope.get("route")
        getattr(_log, "warning" if problem.status >= 500 else "info")(
            "intake.rejected",
            method=request.method,
            route=route.path if route is not None else None,
            status=problem.status,
            problem=problem.slug,
            errors=len(problem.errors),
        )
        return error.response()

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)  # noqa: S101 - registered for Problem only
        return rejected(request, exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        errors = []
        for item in exc.errors():
            where, *rest = item.get("loc", ()) or ("request",)
            location = (
                json_pointer(rest) if where == "body" else f"{where}:{'/'.join(map(str, rest))}"
            )
            errors.append(FieldError(location, str(item.get("msg", "invalid"))))
        detail = "the request's parameters are invalid; see errors"
        problem = Problem(400, "invalid-request", "Invalid request", detail, tuple(errors))
        return rejected(request, ProblemError(problem))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code)
        problem = Problem(
            exc.status_code,
            slug or "http-error",
            HTTPStatus(exc.status_code).phrase if slug else str(exc.detail),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )
        return ProblemError(problem).response()

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # The message of a foreign exception could quote request data: type only.
        _log.error("intake.internal_error", error=type(exc).__name__, path=request.url.path)
        problem = Problem(500, "internal", "Internal error", "the error was logged")
        return ProblemError(problem).response()

    async def on_store(request: Request, exc: Exception) -> Response:
        _log.error("intake.store_failed", error=str(exc))
        problem = Problem(
            503,
            "state-unavailable",
            "Idempotency store unavailable",
            "the service cannot record events right now; nothing was published",
            headers={"Retry-After": "5"},
        )
        return ProblemError(problem).response()

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(IdempotencyStoreError, on_store)
    app.add_exception_handler(Exception, on_unexpected)
