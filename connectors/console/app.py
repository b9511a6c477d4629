"""The operator console as an ASGI app: sign-in, the live feed, charts, the directory.

Every ``/api`` route checks the session on the server
(:class:`~connectors.console.sessions.SessionStore`); pages without a
session send the browser to the sign-in page. Pages and scripts are our own
files in ``assets/`` and Plotly's bundle from its PyPI package: no CDN, so
the console works on a machine without internet, and the Content Security
Policy allows scripts from the console itself only.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from pydantic import Field, StringConstraints
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.auth import ApiKeyStore, Role, key_id_of
from connectors.console.directory import LiveDirectory
from connectors.console.escalation_feed import EscalationFeed
from connectors.console.funnel import STAGES, StatusBoard
from connectors.console.intake_client import IntakeClient
from connectors.console.sessions import COOKIE, Session, SessionStore
from connectors.console.settings import ConsoleSettings
from connectors.escalations import EscalationFilter
from connectors.intake.body import read_body
from connectors.intake.problems import ProblemError, install_error_handlers, malformed
from connectors.observability import RequestMetrics
from schemas.types import ServiceCategory
from streams.logs import get_logger
from streams.metrics import serve_probes
from streams.problems import PROBLEM_MEDIA_TYPE, Problem, forbidden, invalid_path_parameter
from streams.settings import KafkaSettings

__all__ = ["ConsoleParts", "create_app"]

_log = get_logger("connectors.console")

ASSETS = Path(__file__).parent / "assets"
PLOTLY_JS = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
"""Plotly's own bundle, from the plotly package's data (no CDN, nothing committed)."""

SIGNIN_BODY_BYTES = 1024
JURISDICTION = r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?$"
"""An ISO 3166-1 code, or a subdivision of ISO 3166-2 (the feed's filter)."""
KEEPALIVE_S = 15.0
"""A comment line on a quiet event stream, so proxies keep it open and a lost browser is seen."""

CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
    # Plotly sets inline styles and adds a <style> element for its own classes.
    "style-src 'self' 'unsafe-inline'; font-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"strict-transport-security", b"max-age=31536000"),
)


class _SecurityHeaders:
    """The same protective headers on every answer; no caching of pages or ``/api``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = str(scope.get("path", "")).startswith(("/assets/", "/vendor/"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if cacheable or k.lower() != b"cache-control"
                ]
                headers.extend(SECURITY_HEADERS)
                if not cacheable:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class ConsoleParts:
    """What the routes read: Kafka copies, the intake, the keys and the sessions."""

    def __init__(
        self,
        settings: ConsoleSettings,
        *,
        keys: ApiKeyStore,
        feed: EscalationFeed,
        board: StatusBoard,
        directory: LiveDirectory,
        intake: IntakeClient,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.feed = feed
        self.board = board
        self.directory = directory
        self.intake = intake
        self.sessions = SessionStore(
            idle_s=settings.session_idle_s,
            max_s=settings.session_max_s,
            max_sessions=settings.max_sessions,
        )

    async def open(self) -> None:
        for copy in (self.feed, self.board, self.directory):
            await copy.start()

    async def close(self) -> None:
        for copy in (self.feed, self.board, self.directory):
            await copy.close()
        await self.intake.close()


def _signed_out(detail: str = "sign in with an operator key") -> ProblemError:
    return ProblemError(Problem(401, "signed-out", "Not signed in", detail))


def create_app(
    settings: ConsoleSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    keys: ApiKeyStore | None = None,
    intake: IntakeClient | None = None,
    intake_ca: str | None = None,
) -> FastAPI:
    """The console as an ASGI app; Kafka is read only once it starts serving.

    ``intake_ca`` is the CA bundle trusted for an ``https`` intake (default:
    the settings' file, else the system's store); ``keys`` and ``intake``
    replace the real edges in tests.
    """
    settings = settings or ConsoleSettings()
    kafka = kafka or KafkaSettings()
    ca = str(settings.intake_ca_file) if settings.intake_ca_file is not None else intake_ca
    parts = ConsoleParts(
        settings,
        keys=keys or ApiKeyStore(settings.api_keys_file),
        feed=EscalationFeed(kafka, recent=settings.recent_escalations),
        board=StatusBoard(kafka),
        directory=LiveDirectory(kafka),
        intake=intake
        or IntakeClient(
            settings.intake_base,
            verify=ssl.create_default_context(cafile=ca) if ca is not None else True,
            timeout_s=settings.intake_timeout_s,
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await parts.open()
        # /metrics, /livez, /readyz on the console's probe port, like every process;
        # ready once the feed, the funnel and the directory have caught up.
        probes = serve_probes(
            "console",
            ready=lambda: parts.feed.ready and parts.board.ready and parts.directory.ready,
        )
        try:
            yield
        finally:
            probes.close()
            await parts.close()

    app = FastAPI(
        title="SafePassage operator console",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.parts = parts
    _add_pages(app, parts)
    _add_session_routes(app, parts)
    _add_data_routes(app, parts)
    install_error_handlers(app)
    app.add_middleware(_SecurityHeaders)
    app.add_middleware(RequestMetrics)
    return app


def _session_of(request: Request) -> Session | None:
    """The request's live session whose key is still an operator's, else None."""
    parts: ConsoleParts = request.app.state.parts
    session_id = request.cookies.get(COOKIE)
    session = parts.sessions.get(session_id)
    if session is None:
        return None
    principal = parts.keys.authenticate(session.key)
    if principal is None or principal.role is not Role.OPERATOR:  # revoked since sign-in
        parts.sessions.end(session_id)
        _log.info("console.session_revoked", principal=session.principal.name)
        return None
    return session


async def _signed_in(request: Request) -> Session:
    session = _session_of(request)
    if session is None:
        raise _signed_out()
    return session


SignedIn = Annotated[Session, Depends(_signed_in)]
"""A route parameter that needs a live operator session."""


def _same_origin(request: Request) -> None:
    """Changes come from the console's own pages (with SameSite=Strict, a second lock)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise ProblemError(Problem(403, "cross-origin", "Cross-origin request", "not allowed"))


def _add_pages(app: FastAPI, parts: ConsoleParts) -> None:
    app.mount("/assets", StaticFiles(directory=ASSETS), name="assets")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    async def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        return RedirectResponse("/console" if _session_of(request) else "/signin", 303)

    @app.get("/signin", include_in_schema=False)
    async def signin_page() -> FileResponse:
        return FileResponse(ASSETS / "signin.html", media_type="text/html")

    @app.get("/console", include_in_schema=False)
    async def console_page(request: Request) -> Response:
        if _session_of(request) is None:
            return RedirectResponse("/signin", 303)
        return FileResponse(ASSETS / "console.html", media_type="text/html")

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Serving; and whether each Kafka copy has caught up (no authentication)."""
        return JSONResponse(
            {
                "status": "ok",
                "escalations": parts.feed.ready,
                "funnel": parts.board.ready,
                "directory": parts.directory.ready,
            }
        )


def _add_session_routes(app: FastAPI, parts: ConsoleParts) -> None:
    @app.post("/api/session")
    async def sign_in(request: Request) -> Response:
        """JSON ``{"key": ...}``; a session cookie for an operator's key, else 401/403."""
        _same_origin(request)
        body = await read_body(request, SIGNIN_BODY_BYTES)
        try:
            document = json.loads(body)
        except ValueError:
            raise malformed('the body must be JSON: {"key": "sp_operator_..."}') from None
        key = document.get("key") if isinstance(document, dict) else None
        if not isinstance(key, str) or not key:
            raise malformed('the body must be JSON: {"key": "sp_operator_..."}')
        principal = parts.keys.authenticate(key)
        if principal is None:
            _log.info("console.signin_refused", key_id=key_id_of(key), why="unknown-key")
            raise _signed_out("the key is unknown or was revoked")
        if principal.role is not Role.OPERATOR:
            _log.info("console.signin_refused", key_id=principal.key_id, why="role")
            raise ProblemError(forbidden("the console is for operator keys only"))
        session_id, session = parts.sessions.create(principal, key)
        _log.info("console.signed_in", principal=principal.name, key_id=principal.key_id)
        answer = JSONResponse(_session_view(parts, session), status_code=201)
        answer.set_cookie(
            COOKIE,
            session_id,
            max_age=parts.settings.session_max_s,
            path="/",
            secure=True,  # __Host- cookies must be; browsers keep them on loopback http too
            httponly=True,
            samesite="strict",
        )
        return answer

    @app.get("/api/session")
    async def who(session: SignedIn) -> JSONResponse:
        """Who is signed in, until when, and the token the console's scripts send with changes."""
        return JSONResponse(_session_view(parts, session))

    @app.delete("/api/session", status_code=204)
    async def sign_out(request: Request, session: SignedIn) -> Response:
        """Sign-out: the session ends on the server; the cookie is cleared."""
        _same_origin(request)
        if request.headers.get("x-csrf-token") != session.csrf:
            raise ProblemError(forbidden("the console's own pages sign out"))
        parts.sessions.end(request.cookies.get(COOKIE))
        _log.info("console.signed_out", principal=session.principal.name)
        answer = Response(status_code=204)
        answer.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return answer


def _session_view(parts: ConsoleParts, session: Session) -> dict[str, Any]:
    return {
        "principal": session.principal.name,
        "key_id": session.principal.key_id,
        "expires_in_s": round(parts.sessions.remaining_s(session)),
        "csrf": session.csrf,
    }


def _which(
    level: Annotated[list[Annotated[int, Field(ge=1, le=3)]] | None, Query()] = None,
    category: Annotated[list[ServiceCategory] | None, Query()] = None,
    jurisdiction: Annotated[
        list[Annotated[str, StringConstraints(pattern=JURISDICTION)]] | None,
        Query(max_length=20),
    ] = None,
) -> EscalationFilter:
    """The feed's filter from the query (repeatable ``level``, ``category``, ``jurisdiction``)."""
    return EscalationFilter(
        levels=frozenset(level or ()),
        jurisdictions=frozenset(j.upper() for j in jurisdiction or ()),
        categories=frozenset(category or ()),
    )


Which = Annotated[EscalationFilter, Depends(_which)]


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _add_data_routes(app: FastAPI, parts: ConsoleParts) -> None:
    @app.get("/api/escalations")
    async def recent_escalations(_: SignedIn, which: Which) -> JSONResponse:
        """The recent escalations that pass the filter, oldest first."""
        return JSONResponse({"ready": parts.feed.ready, "items": parts.feed.recent(which)})

    @app.get("/api/escalations/stream")
    async def escalation_stream(request: Request, _: SignedIn, which: Which) -> StreamingResponse:
        """Server-sent events: the recent escalations that pass the filter, then each new one."""
        session_id = request.cookies.get(COOKIE)

        async def events() -> AsyncIterator[str]:
            subscription, history = parts.feed.subscribe(which)
            try:
                yield "retry: 3000\n\n"
                for shown in history:
                    yield _sse("escalation", shown)
                yield _sse("history-end", {"ready": parts.feed.ready, "shown": len(history)})
                while True:
                    item: dict[str, Any] | None
                    try:
                        item = await asyncio.wait_for(subscription.queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        if not parts.sessions.alive(session_id):
                            yield _sse("signed-out", {})
                            return
                        yield ": keep-alive\n\n"
                        continue
                    if item is None:  # this browser fell too far behind: it reconnects
                        return
                    yield _sse("escalation", item)
            finally:
                parts.feed.unsubscribe(subscription)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )

    @app.get("/api/survivors/{survivor_id}/status")
    async def survivor_status(survivor_id: str, session: SignedIn) -> JSONResponse:
        """The intake's answer to the operator's own status read (audited there)."""
        try:
            survivor = UUID(survivor_id)
        except ValueError:
            raise ProblemError(
                invalid_path_parameter(
                    "survivor_id", "must be a UUID", "the survivor id must be a UUID"
                )
            ) from None
        status, body, headers = await parts.intake.survivor_status(session.key, survivor)
        _log.info(
            "console.status_lookup",
            principal=session.principal.name,
            survivor_id=str(survivor),
            status=status,
        )
        return JSONResponse(
            body,
            status_code=status,
            headers=headers,
            media_type=PROBLEM_MEDIA_TYPE if status >= 400 else "application/json",
        )

    @app.get("/api/funnel")
    async def funnel(_: SignedIn) -> JSONResponse:
        """Referrals per stage reached, per category and jurisdiction (from case-status.v1)."""
        return JSONResponse(
            {
                "ready": parts.board.ready,
                "stages": list(STAGES),
                "survivors": parts.board.survivors,
                "rows": parts.board.counts(),
            }
        )

    @app.get("/api/sla-breaches")
    async def sla_breaches(_: SignedIn) -> JSONResponse:
        """Deadlines missed, per category and jurisdiction (from escalations.v1)."""
        return JSONResponse({"ready": parts.feed.ready, "rows": parts.feed.breaches()})

    @app.get("/api/directory")
    async def directory(_: SignedIn) -> JSONResponse:
        """Providers' places per category: total, reserved, held, available."""
        return JSONResponse({"ready": parts.directory.ready, "rows": parts.directory.rows()})
