"""The operators' status read: a survivor's case status, forwarded to a router worker.

The intake holds no case state of its own; the router worker does, so the
answer is passed on as it is (status code and body). The role is checked
before the id is parsed, so that other roles learn nothing from the answer;
an unreachable or unreadable router becomes a 503 or 502 problem.
"""

from __future__ import annotations

from uuid import UUID

import httpx
from fastapi.responses import Response

from connectors.auth import Principal, authorize_status_read
from connectors.exceptions import ForbiddenError
from connectors.intake.problems import FieldError, ProblemError
from connectors.intake.settings import IntakeSettings
from streams.logs import get_logger

__all__ = ["forward_status_read"]

_log = get_logger("connectors.intake")


async def forward_status_read(
    router: httpx.AsyncClient,
    settings: IntakeSettings,
    principal: Principal,
    survivor_id: str,
    authorization: str | None = None,
) -> Response:
    """Forward an operator's status read to a router worker; its status and body as they are.

    The role is checked before the id, so that other roles learn nothing
    from the answer; the id is parsed here, not by FastAPI, for that order.
    The caller's ``Authorization`` header goes along: the worker checks the
    same keys file and audits the read under the operator's name.
    """
    _operators_only(principal)
    try:
        survivor = UUID(survivor_id)
    except ValueError:
        raise ProblemError(
            400,
            "invalid-request",
            "Invalid request",
            "the survivor id must be a UUID",
            errors=[FieldError("path:survivor_id", "must be a UUID")],
        ) from None
    base = settings.router_status_url.rstrip("/")
    url = f"{base}/v1/survivors/{survivor}/status"
    try:
        headers = {"Authorization": authorization} if authorization else None
        answer = await router.get(url, headers=headers, timeout=settings.router_timeout_s)
    except (httpx.ConnectError, httpx.TimeoutException) as exc:
        _log.warning("intake.router_unreachable", reason=type(exc).__name__)
        raise ProblemError(
            503,
            "router-unavailable",
            "Router unavailable",
            "no router worker answered; retry shortly",
            headers={"Retry-After": "5"},
        ) from None
    except httpx.HTTPError as exc:
        _log.warning("intake.router_bad_answer", reason=type(exc).__name__)
        raise ProblemError(
            502,
            "router-bad-gateway",
            "Bad answer from the router",
            "the router worker's answer could not be read",
        ) from None
    _log.info(
        "intake.status_read",
        principal=principal.name,
        role=principal.role.value,
        survivor_id=str(survivor),
        status=answer.status_code,
    )
    media_type = answer.headers.get("content-type", "application/json")
    return Response(answer.content, status_code=answer.status_code, media_type=media_type)


def _operators_only(principal: Principal) -> None:
    """403 problem unless the principal is an operator."""
    try:
        authorize_status_read(principal)
    except ForbiddenError as exc:
        raise ProblemError(403, "forbidden", "Not allowed for this principal", str(exc)) from None
