"""Status lookups through the intake's own route, with the signed-in operator's key.

The console never answers a survivor's status from Kafka: the intake is the
one surface that reads status, authenticates the caller and audits every
read (``status.read`` on ``audit.v1``) under the principal whose key it was.
The console forwards the intake's answer (200, 404, 503 ...) unchanged, and
a failure to reach the intake as its own problem.
"""

from __future__ import annotations

import ssl
from typing import Any
from uuid import UUID

import httpx

from connectors.intake.problems import ProblemError
from streams.logs import get_logger
from streams.problems import Problem

__all__ = ["IntakeAnswer", "IntakeClient"]

_log = get_logger("connectors.console")

IntakeAnswer = tuple[int, Any, dict[str, str]]
"""HTTP status, JSON body and the headers worth passing on (``Retry-After``)."""


class IntakeClient:
    """One HTTP client (connection pool) to the intake for the console's lifetime."""

    def __init__(
        self,
        base_url: str,
        *,
        verify: ssl.SSLContext | bool,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            verify=verify,
            timeout=timeout_s,
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": "safepassage-console"},
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def survivor_status(self, key: str, survivor: UUID) -> IntakeAnswer:
        """``GET /v1/survivors/{id}/status`` as the operator whose key this is."""
        try:
            answer = await self._client.get(
                f"/v1/survivors/{survivor}/status",
                headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            _log.warning("console.intake_unreachable", error_class=type(exc).__name__)
            raise ProblemError(
                Problem(
                    502,
                    "intake-unreachable",
                    "The intake did not answer",
                    "the console could not reach the intake's status route; try again",
                    headers={"Retry-After": "5"},
                )
            ) from None
        try:
            body = answer.json()
        except ValueError:
            body = None
        passed = {k: v for k, v in answer.headers.items() if k.lower() == "retry-after"}
        return answer.status_code, body, passed
