"""``GET /v1/survivors/{id}/status`` on the router's Faust web server.

Served by any worker and forwarded by Faust to the worker that owns the
survivor's intake partition (and so its table entry); every answered read
is audited there. Who may read is not decided here: the composition root
injects an :data:`~processors.router.ports.Authorizer` (None leaves the page
open, which only a dev profile allows). Errors are problem+json in the
dialect of :mod:`streams.problems`, the same the intake API speaks, since
the intake passes this page's answers on unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import faust
from faust.web import Request, Response, View

from processors.case import CaseState
from processors.router.ports import (
    AccessDeniedError,
    Authorizer,
    Caller,
    Table,
    Topic,
    UnauthenticatedError,
    json_bytes,
    send_and_wait,
)
from processors.status import StatusRead, status_record, status_view
from streams.problems import (
    PROBLEM_MEDIA_TYPE,
    Problem,
    forbidden,
    invalid_key,
    invalid_path_parameter,
    router_unavailable,
    unauthenticated,
    unknown_survivor,
)

__all__ = ["PATH", "admit", "caller_of", "install_status_page", "parse_survivor", "status_read"]

PATH = "/v1/survivors/{survivor_id}/status"

NOT_READY = router_unavailable("the worker is joining its group; retry shortly", 2)

_Page = Callable[..., Awaitable[Response]]


def admit(authorizer: Authorizer | None, authorization: str | None) -> Problem | None:
    """The 401/403 problem for a request's ``Authorization`` header; None lets it through."""
    if authorizer is None:
        return None
    try:
        authorizer(authorization)
    except UnauthenticatedError as exc:
        return invalid_key() if exc.invalid_key else unauthenticated()
    except AccessDeniedError as exc:
        return forbidden(str(exc))
    return None


def caller_of(authorizer: Authorizer | None, authorization: str | None) -> Caller | None:
    """Who is reading, for the audit record: None without an authorizer (dev) or a caller."""
    if authorizer is None:
        return None
    try:
        return authorizer(authorization)
    except (UnauthenticatedError, AccessDeniedError):  # admitted, but the keys changed since
        return None


def parse_survivor(text: str) -> UUID | Problem:
    """The survivor id of the path, or the 400 problem (the value is not quoted back)."""
    try:
        return UUID(text)
    except ValueError:
        return invalid_path_parameter(
            "survivor_id", "must be a UUID", "the survivor id must be a UUID"
        )


def status_read(survivor: UUID, caller: Caller | None, status: int, at: datetime) -> StatusRead:
    """The audit record of one answered read: who, whom, what status; no case data."""
    return StatusRead(
        survivor_id=survivor,
        at=at,
        principal=caller.principal if caller else None,
        role=caller.role if caller else None,
        key_id=caller.key_id if caller else None,
        status=status,
    )


def _answer(web: View, request: Request, problem: Problem) -> Response:
    return web.json(
        problem.body(request.url.path),
        status=problem.status,
        content_type=PROBLEM_MEDIA_TYPE,
        headers=dict(problem.headers) or None,
    )


def _authenticated(authorizer: Authorizer | None) -> Callable[[_Page], _Page]:
    """401/403 problem+json unless the authorizer admits the request (None: open, dev only).

    Checked on the worker that receives the request; Faust forwards the
    headers to the worker owning the survivor, which checks them again.
    """

    def decorate(handler: _Page) -> _Page:
        if authorizer is None:
            return handler

        @functools.wraps(handler)
        async def wrapper(web: View, request: Request, **kwargs: Any) -> Response:
            problem = admit(authorizer, request.headers.get("Authorization"))
            if problem is not None:
                return _answer(web, request, problem)
            result: Response = await handler(web, request, **kwargs)
            return result

        return wrapper

    return decorate


def _ready_or_503(app: faust.App) -> Callable[[_Page], _Page]:
    """503 with Retry-After until the worker has partitions: Faust cannot route before."""

    def decorate(handler: _Page) -> _Page:
        @functools.wraps(handler)
        async def wrapper(web: View, request: Request, **kwargs: Any) -> Response:
            if not app.assignor.assigned_actives():
                return _answer(web, request, NOT_READY)
            result: Response = await handler(web, request, **kwargs)
            return result

        return wrapper

    return decorate


def install_status_page(
    app: faust.App,
    *,
    cases: Table,
    audit: Topic,
    intake_route: Any,
    authorizer: Authorizer | None,
) -> None:
    """Register the page on ``app``; ``intake_route`` is the intake topic, for routing only."""

    @app.page(PATH)
    @_authenticated(authorizer)
    @_ready_or_503(app)
    # Routed by the owner of the survivor's *intake* partition (the table's
    # owner too: co-partitioned). Faust's table_route maps keys through the
    # changelog assignment, which includes standbys, and sent requests to a
    # worker that does not serve the key (seen with two workers; cf.
    # faust-streaming issue #514).
    @app.topic_route(topic=intake_route, match_info="survivor_id")
    async def survivor_status(web: View, request: Request, survivor_id: str) -> Response:
        survivor = parse_survivor(survivor_id)
        if isinstance(survivor, Problem):
            return _answer(web, request, survivor)
        stored = cases.get(str(survivor))
        # Audited here, on the worker that owns the survivor (a forwarding worker
        # runs only the outer checks), and acknowledged before the answer.
        caller = caller_of(authorizer, request.headers.get("Authorization"))
        now = datetime.now(UTC)
        record = status_read(survivor, caller, 200 if stored else 404, now)
        await send_and_wait(audit, str(survivor).encode(), json_bytes(record.to_dict()))
        if not stored:
            return _answer(web, request, unknown_survivor())
        return web.json(status_view(status_record(CaseState.from_dict(stored)), now).to_dict())

    del survivor_status  # registered on the app
