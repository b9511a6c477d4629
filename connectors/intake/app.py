"""The intake API as an ASGI app: :func:`create_app` wires the parts and the routes.

The routes stay thin; the work is in :class:`~connectors.intake.service.IntakeService`.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import fastapi_offline
from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from connectors.auth import ApiKeyStore, Principal, Role
from connectors.idempotency import IdempotencyStore
from connectors.intake.body import parse_json, read_body, read_documents
from connectors.intake.disclosure import DISCLOSURE_BODY_BYTES, SealedSources
from connectors.intake.keys import KeyDirectory
from connectors.intake.openapi import (
    DESCRIPTION,
    install_openapi,
    json_response,
    problem_responses,
    request_body_docs,
)
from connectors.intake.problems import ProblemError, broker_unavailable, install_error_handlers
from connectors.intake.provider_store import ProvidersReader
from connectors.intake.publisher import KafkaPublisher, Publisher
from connectors.intake.service import IntakeService
from connectors.intake.settings import IntakeSettings
from connectors.intake.status import StatusReader, StatusStore, read_status
from connectors.observability import REFERRALS, RequestMetrics
from connectors.private import private_dir
from streams.keystore import FileKeystore
from streams.metrics import serve_probes
from streams.problems import forbidden
from streams.settings import KafkaSettings
from streams.tracing import TRACEPARENT, span, traceparent_of

__all__ = ["Caller", "create_app"]


def create_app(
    settings: IntakeSettings | None = None,
    *,
    kafka: KafkaSettings | None = None,
    publisher: Publisher | None = None,
    keys: ApiKeyStore | None = None,
    status: StatusReader | None = None,
    directory: KeyDirectory | None = None,
    sources: SealedSources | None = None,
    providers: ProvidersReader | None = None,
) -> FastAPI:
    """The intake API as an ASGI app.

    Everything is built here, so start-up problems (keys file, state folder)
    surface at once; Kafka is reached only when the app starts serving.
    ``publisher``, ``keys``, ``status``, ``directory``, ``sources`` and ``providers``
    replace the real edges in tests.
    """
    settings = settings or IntakeSettings()
    kafka = kafka or KafkaSettings()
    private_dir(settings.state_dir)  # idempotency store and keystore: the owner's alone
    keys = keys or ApiKeyStore(settings.api_keys_file)
    store = IdempotencyStore(
        settings.state_dir / "idempotency.sqlite3",
        ttl=settings.idempotency_ttl,
        lease=settings.idempotency_lease,
        max_entries=settings.idempotency_max_entries,
    )
    publisher = publisher or KafkaPublisher(kafka, timeout_s=settings.publish_timeout_s)
    service = IntakeService(
        settings,
        kafka,
        publisher=publisher,
        keys=keys,
        store=store,
        status=status if status is not None else StatusStore(kafka),
        directory=directory or KeyDirectory(kafka, FileKeystore(settings.keystore_path)),
        sources=sources,
        providers=providers,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.open()
        # Ready: the status copy caught up (reads would answer 503 before).
        probes = serve_probes("intake", ready=lambda: service.status.ready)
        store = service.status
        counted = REFERRALS.attach(lambda: store.served) if isinstance(store, StatusStore) else None
        try:
            yield
        finally:
            if counted is not None:
                counted()
            probes.close()
            await service.close()

    try:
        version = importlib.metadata.version("safepassage")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    app = FastAPI(
        title="SafePassage intake API",
        version=version,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # served by _add_docs from local assets, not a CDN
        redoc_url=None,
    )
    app.state.service = service
    app.add_middleware(RequestMetrics)
    _add_docs(app)
    _add_routes(app, service)
    _add_directory_routes(app, service)
    install_error_handlers(app)
    install_openapi(app)
    return app


SWAGGER_UI_ASSETS = Path(fastapi_offline.__file__).parent / "static"
"""Swagger UI 5 (which reads OpenAPI 3.1) as the fastapi-offline package ships it."""


def _add_docs(app: FastAPI) -> None:
    """Swagger UI at /docs with its script, style and icon served here: it works offline."""
    app.mount("/docs-assets", StaticFiles(directory=SWAGGER_UI_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no call to an online validator
        )


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="sp_<role>_<random>",
    description="An API key from `safepassage keys add`.",
)


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    service: IntakeService = request.app.state.service
    return service.authenticate(credentials)


Caller = Annotated[Principal, Depends(_caller)]
"""A route parameter that authenticates the request."""


def _add_routes(app: FastAPI, service: IntakeService) -> None:
    settings, publisher = service.settings, service.publisher

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=None,
        summary="Publish one CloudEvent (structured mode) or a batch",
        responses={
            202: json_response(
                "Every event is on Kafka; one receipt each.", "Receipt", "BatchReceipt"
            ),
            **problem_responses(400, 401, 403, 409, 413, 415, 429, 503),
        },
        openapi_extra=request_body_docs(settings.max_batch_items),
    )
    async def publish_events(request: Request, principal: Caller) -> JSONResponse:
        """Validate every event, publish it to its topic, answer 202 once Kafka acknowledged."""
        if principal.role is Role.OPERATOR:
            raise ProblemError(forbidden("operators read status and do not publish events"))
        if principal.role is Role.DIRECTORY_ADMIN:
            raise ProblemError(
                forbidden("directory administrators write the directory through /v1/providers")
            )
        documents, batch = await read_documents(request, settings)
        tls = request.url.scheme == "https"  # clear personal data only over TLS
        documents, digests = await service.clear.seal(principal, documents, batch, tls=tls)
        items = service.validate(principal, documents, batch, digests)
        with span(
            "intake.publish", traceparent_of(request.headers), role=principal.role.value
        ) as trace:
            for item in items:  # the router, relays and webhooks continue this trace
                item.record.headers.append((TRACEPARENT, trace.encode()))
            receipts, replayed = await service.accept(principal, items)
        content: Any = {"accepted": receipts} if batch else receipts[0]
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JSONResponse(content, status_code=202, headers=headers)

    @app.get(
        "/v1/survivors/{survivor_id}/status",
        response_model=None,
        summary="A survivor's case status (operators only; every read is audited)",
        responses={
            200: json_response(
                "The survivor's status, as of now (expired consents left out).", "StatusView"
            ),
            404: {"description": "No case is known for this survivor id (the read is audited)."},
            **problem_responses(400, 401, 403, 503),
        },
    )
    async def survivor_status(
        survivor_id: Annotated[str, PathParam(json_schema_extra={"format": "uuid"})],
        principal: Caller,
    ) -> JSONResponse:
        """From the intake's copy of case-status.v1; 503 with Retry-After until it caught up."""
        view = await read_status(
            service.status,
            publisher,
            service.kafka,
            principal,
            survivor_id,
            timeout_s=settings.publish_timeout_s,
        )
        return JSONResponse(view.to_dict())

    @app.post(
        "/v1/survivors/{survivor_id}/data-key",
        response_model=None,
        summary="The survivor's data key, to seal personal data (agencies of the case only)",
        responses={
            200: json_response(
                "The key (base64) and its id; made on the first call. Never store it.",
                "IssuedDataKey",
            ),
            404: {"description": "Not a survivor of the caller's cases (audited)."},
            410: {"description": "The survivor's data was erased (crypto-shredding)."},
            **problem_responses(400, 401, 403, 503),
        },
    )
    async def data_key(
        survivor_id: Annotated[str, PathParam(json_schema_extra={"format": "uuid"})],
        principal: Caller,
    ) -> JSONResponse:
        """Like a KMS GenerateDataKey: every answer audited, over TLS outside loopback."""
        answer = await service.data_keys.issue(principal, survivor_id)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    @app.post(
        "/v1/survivors/{survivor_id}/referrals/{referral_id}/disclosure",
        response_model=None,
        summary="The personal data a provider needs for a referral offered to it, sealed to it",
        responses={
            200: json_response(
                "The category's allowed fields and the referral's notes, HPKE-sealed to the "
                "public key sent. Never store the opened data longer than the service needs.",
                "SealedDisclosure",
            ),
            404: {"description": "No such referral offered to the caller (audited)."},
            409: {
                "description": "The offer no longer stands, the case is closed, or no active "
                "consent covers the service (audited; `reason` says which)."
            },
            410: {"description": "The survivor's data was erased (crypto-shredding)."},
            **problem_responses(400, 401, 403, 503),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["public_key"],
                            "additionalProperties": False,
                            "properties": {
                                "public_key": {
                                    "type": "string",
                                    "description": "Standard base64 of the caller's raw "
                                    "32-byte X25519 public key; the private half never leaves it.",
                                }
                            },
                        }
                    }
                },
            }
        },
    )
    async def disclosure(
        survivor_id: Annotated[str, PathParam(json_schema_extra={"format": "uuid"})],
        referral_id: Annotated[str, PathParam(json_schema_extra={"format": "uuid"})],
        request: Request,
        principal: Caller,
    ) -> JSONResponse:
        """Checked at the moment of the call against the offer and consent; always audited."""
        body = await read_body(request, DISCLOSURE_BODY_BYTES)  # 413 beyond, as it streams
        answer = await service.disclosures.disclose(principal, survivor_id, referral_id, body)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    @app.get(
        "/healthz",
        response_model=None,
        summary="Whether the service can reach Kafka (no authentication)",
        responses={
            200: json_response("Kafka answered a metadata request.", "Health"),
            **problem_responses(503),
        },
    )
    async def healthz() -> JSONResponse:
        """A metadata request to Kafka, cached for a second; 503 problem when it fails."""
        if await publisher.probe():
            return JSONResponse({"status": "ok", "broker": "reachable"})
        raise broker_unavailable("Kafka did not answer a metadata request", broker="unreachable")


_ENTRY_BODY = "#/components/schemas/"
_ID = Annotated[str, PathParam(json_schema_extra={"format": "uuid"})]


def _json_body(model: str, description: str) -> dict[str, Any]:
    schema = {"$ref": _ENTRY_BODY + model}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


def _add_directory_routes(app: FastAPI, service: IntakeService) -> None:
    """The provider directory: /v1/providers (docs/directory.md)."""
    settings, work = service.settings, service.directory_api
    tag: list[str | Enum] = ["directory"]

    @app.get(
        "/v1/providers",
        response_model=None,
        tags=tag,
        summary="Every provider in the directory (directory administrators and operators)",
        responses={
            200: {
                "description": "The providers, by id.",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "array",
                            "items": {"$ref": _ENTRY_BODY + "ProviderView"},
                        }
                    }
                },
            },
            **problem_responses(401, 403, 503),
        },
    )
    async def list_providers(principal: Caller) -> JSONResponse:
        """From the intake's copy of providers.v1; 503 with Retry-After until it caught up."""
        return JSONResponse(await work.listing(principal))

    @app.get(
        "/v1/providers/export",
        response_model=None,
        tags=tag,
        summary="The directory as Open Referral HSDS 3.0 JSON (a page of services)",
        responses={
            200: {
                "description": "HSDS 3.0 `GET /services` page holding every provider's service.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **problem_responses(401, 403, 503),
        },
    )
    async def export_providers(principal: Caller) -> JSONResponse:
        """Each provider's kept HSDS service with what the directory says now."""
        return JSONResponse(await work.export(principal))

    @app.post(
        "/v1/providers/import",
        response_model=None,
        tags=tag,
        summary="Register or update every service of an HSDS 3.0 document (all or nothing)",
        responses={
            200: json_response("What was published, by provider id.", "ImportReport"),
            **problem_responses(400, 401, 403, 413, 503),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def import_providers(request: Request, principal: Caller) -> JSONResponse:
        """Checked whole first: one error anywhere and nothing is published."""
        body = await read_body(request, settings.max_import_bytes)
        return JSONResponse(await work.import_hsds(principal, parse_json(body)))

    @app.post(
        "/v1/providers",
        status_code=201,
        response_model=None,
        tags=tag,
        summary="Register a provider (directory administrators)",
        responses={
            201: json_response("Registered: provider.registered is on Kafka.", "ProviderView"),
            409: {"description": "A provider with this id is registered already (audited)."},
            **problem_responses(400, 401, 403, 413, 503),
        },
        openapi_extra=_json_body("NewProvider", "The entry; without provider_id one is issued."),
    )
    async def register_provider(request: Request, principal: Caller) -> JSONResponse:
        """provider.registered, acknowledged and audited, then 201 with Location."""
        body = await read_body(request, settings.max_body_bytes)
        view = await work.register(principal, body)
        location = f"/v1/providers/{view['provider_id']}"
        return JSONResponse(view, status_code=201, headers={"Location": location})

    @app.get(
        "/v1/providers/{provider_id}",
        response_model=None,
        tags=tag,
        summary="One provider (administrators and operators; a provider its own entry)",
        responses={
            200: json_response("The provider and its latest capacity reports.", "ProviderView"),
            404: {"description": "No provider with this id."},
            **problem_responses(400, 401, 403, 503),
        },
    )
    async def read_provider(provider_id: _ID, principal: Caller) -> JSONResponse:
        return JSONResponse(await work.read(principal, provider_id))

    @app.put(
        "/v1/providers/{provider_id}",
        response_model=None,
        tags=tag,
        summary="Replace a provider's entry (directory administrators)",
        responses={
            200: json_response("Updated: provider.updated is on Kafka.", "ProviderView"),
            404: {"description": "No provider with this id (audited)."},
            **problem_responses(400, 401, 403, 413, 503),
        },
        openapi_extra=_json_body("EntryFields", "The whole new entry (its HSDS fields are kept)."),
    )
    async def update_provider(
        provider_id: _ID, request: Request, principal: Caller
    ) -> JSONResponse:
        body = await read_body(request, settings.max_body_bytes)
        return JSONResponse(await work.update(principal, provider_id, body))

    @app.put(
        "/v1/providers/{provider_id}/capacity",
        response_model=None,
        tags=tag,
        summary="Report places in one category (the provider itself, or an administrator)",
        responses={
            200: json_response("Reported: provider.capacity is on Kafka.", "ProviderView"),
            404: {"description": "No provider with this id (audited)."},
            **problem_responses(400, 401, 403, 413, 503),
        },
        openapi_extra=_json_body("CapacityFigure", "Places in one of the provider's categories."),
    )
    async def report_capacity(
        provider_id: _ID, request: Request, principal: Caller
    ) -> JSONResponse:
        body = await read_body(request, settings.max_body_bytes)
        return JSONResponse(await work.capacity(principal, provider_id, body))
