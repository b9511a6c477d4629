"""The provider simulator of the live demo: the demo directory's providers, answering their offers.

One HTTP server at the demo webhook URL (``SAFEPASSAGE_RUN_DEMO_WEBHOOK_URL``,
``<url>/<provider id>``) receives every signed webhook the delivery
(``safepassage deliver webhooks``) sends a demo provider, and behaves as
that provider would: it checks the signature with the provider's own
secret (:func:`connectors.webhooks.verify`, Standard Webhooks; 401 if it
does not hold), acknowledges at once (2xx: the delivery is done), and
then answers the offer through the intake API with that provider's own
key, as the provider SDK does (:class:`~connectors.sdk.ProviderClient`
with an :class:`~connectors.sdk.HttpTransport`), after the delays its
behaviour says (:func:`connectors.demo.plan.answers`: prompt, slow,
decliner, silent, failing). A cancellation (the ladder re-offered the
referral, or the agency withdrew it) ends whatever that provider still
meant to say about it.

It is a demo of a provider's side, so it keeps nothing on disk; delivery
ids it has seen are kept in memory (a bounded set), as a provider
deduplicates. Its log has one line per answer: provider slug, behaviour,
referral id and the answer; never a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.delivery.settings import load_providers
from connectors.demo.plan import Answer, AnswerKind, answers, behaviour_of, provider_by_id
from connectors.exceptions import ConnectorsError, SdkError, SignatureError
from connectors.platform.demo import DemoKey
from connectors.sdk import HttpTransport, OfferRef, ProviderClient
from connectors.webhooks import verify
from schemas.types import DeclineReason, FailureReason, ReferralOutcome
from streams.logs import get_logger
from streams.settings import KafkaSettings

__all__ = ["SimulatedProvider", "Simulator", "load_simulated", "serve"]

log = get_logger(__name__)

_SEEN_CAPACITY = 50_000
"""Delivery ids remembered for deduplication (a redelivery after that many is answered again,
which the answers' stable ids make harmless)."""


class SimulatorError(ConnectorsError):
    """The simulator cannot start: its files are missing or do not fit together."""


@dataclass
class SimulatedProvider:
    """One demo provider: its webhook secrets and its SDK client (answers with its own key)."""

    provider_id: uuid.UUID
    secrets: tuple[str, ...]
    client: ProviderClient

    @property
    def name(self) -> str:
        provider = provider_by_id(self.provider_id)
        return provider.slug if provider else str(self.provider_id)


def load_simulated(
    credentials_file: Path, webhooks_file: Path, intake_url: str, verify_tls: ssl.SSLContext | bool
) -> dict[uuid.UUID, SimulatedProvider]:
    """Every demo provider that has both a key and a webhook endpoint, ready to answer."""
    try:
        document = yaml.safe_load(credentials_file.read_text(encoding="utf-8"))
        keys = [DemoKey.model_validate(entry) for entry in document["keys"]]
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError) as exc:
        raise SimulatorError(
            f"cannot read the demo keys in {credentials_file} ({type(exc).__name__})"
        ) from None
    endpoints = load_providers(webhooks_file)
    settings = KafkaSettings()  # unused: answers go over HTTP, offers come by webhook
    simulated: dict[uuid.UUID, SimulatedProvider] = {}
    for key in keys:
        if key.provider_id is None or key.provider_id not in endpoints:
            continue
        endpoint = endpoints[key.provider_id]
        transport = HttpTransport(intake_url, key.key, verify=verify_tls)
        simulated[key.provider_id] = SimulatedProvider(
            key.provider_id,
            tuple(secret.get_secret_value() for secret in endpoint.secrets),
            ProviderClient(key.provider_id, settings, transport=transport),
        )
    if not simulated:
        raise SimulatorError(
            f"no demo provider has both a key in {credentials_file} and an endpoint in "
            f"{webhooks_file}: run `safepassage run` once to make them"
        )
    return simulated


@dataclass
class Simulator:
    """The webhook receiver and the answers it schedules."""

    providers: Mapping[uuid.UUID, SimulatedProvider]
    speed: float = 1.0
    """Divides every delay of the behaviours (tests)."""
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _pending: dict[tuple[uuid.UUID, uuid.UUID], asyncio.Task[None]] = field(default_factory=dict)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/healthz", self.health, methods=["GET"]),
                Route("/{prefix:path}/{provider_id}", self.receive, methods=["POST"]),
            ],
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        log.info("demo.providers.listening", providers=len(self.providers))
        try:
            yield
        finally:
            await self.stop()

    @property
    def pending(self) -> int:
        """Offers whose answers are still to come."""
        return len(self._pending)

    async def stop(self) -> None:
        """Drop every answer not given yet; close the providers' connections."""
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for provider in self.providers.values():
            provider.client.close()

    async def health(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok", "providers": len(self.providers)})

    async def receive(self, request: Request) -> Response:
        """One webhook: verify it, acknowledge it, schedule the provider's answers."""
        try:
            provider = self.providers.get(uuid.UUID(request.path_params["provider_id"]))
        except ValueError:
            provider = None
        if provider is None:
            return Response(status_code=404)
        body = await request.body()
        try:
            delivery = verify(provider.secrets, dict(request.headers), body)
        except SignatureError as exc:
            log.warning("demo.provider.refused", provider=provider.name, error=type(exc).__name__)
            return Response(status_code=401)
        if not self._first_time(str(delivery.get("delivery_id"))):
            return Response(status_code=204)
        self.handle(provider, delivery)
        return Response(status_code=204)

    def _first_time(self, delivery_id: str) -> bool:
        if delivery_id in self._seen:
            return False
        self._seen[delivery_id] = None
        while len(self._seen) > _SEEN_CAPACITY:
            self._seen.popitem(last=False)
        return True

    def handle(self, provider: SimulatedProvider, delivery: Mapping[str, Any]) -> None:
        """Start answering an offer, or stop answering a cancelled referral."""
        data = delivery.get("data")
        if not isinstance(data, dict):
            return
        try:
            referral_id = uuid.UUID(str(data["referral_id"]))
            if delivery.get("event_type") == "referral.cancelled":
                self._cancel(provider.provider_id, referral_id)
                log.info(
                    "demo.provider.cancelled",
                    provider=provider.name,
                    referral_id=str(referral_id),
                    reason=data.get("reason"),
                )
                return
            if delivery.get("event_type") != "referral.offered":
                return
            ref = OfferRef(uuid.UUID(str(data["survivor_id"])), referral_id, int(data["attempt"]))
        except (KeyError, ValueError, TypeError):
            log.warning("demo.provider.unreadable", provider=provider.name)
            return
        self._cancel(provider.provider_id, referral_id)
        key = (provider.provider_id, referral_id)
        plan = answers(provider.provider_id)
        log.info(
            "demo.provider.offered",
            provider=provider.name,
            behaviour=behaviour_of(provider.provider_id).value,
            referral_id=str(referral_id),
            attempt=ref.attempt,
            urgency=data.get("urgency"),
            category=data.get("category"),
        )
        if plan:
            task = asyncio.get_running_loop().create_task(self._answer(provider, ref, plan))
            self._pending[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))

    def _forget(self, key: tuple[uuid.UUID, uuid.UUID], done: asyncio.Task[None]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]

    def _cancel(self, provider_id: uuid.UUID, referral_id: uuid.UUID) -> None:
        task = self._pending.pop((provider_id, referral_id), None)
        if task is not None:
            task.cancel()

    async def _answer(
        self, provider: SimulatedProvider, ref: OfferRef, plan: tuple[Answer, ...]
    ) -> None:
        for answer in plan:
            await asyncio.sleep(answer.after_s / self.speed)
            try:
                await asyncio.to_thread(_give, provider.client, ref, answer)
            except SdkError as exc:  # e.g. the offer moved on meanwhile: the intake says so
                log.info(
                    "demo.provider.not_answered",
                    provider=provider.name,
                    referral_id=str(ref.referral_id),
                    answer=answer.kind.value,
                    error=type(exc).__name__,
                    status=getattr(exc, "status", None),
                )
                return
            log.info(
                "demo.provider.answered",
                provider=provider.name,
                referral_id=str(ref.referral_id),
                attempt=ref.attempt,
                answer=answer.kind.value,
                reason=answer.reason.value if answer.reason else None,
            )


def _give(client: ProviderClient, ref: OfferRef, answer: Answer) -> str:
    """One answer through the provider SDK (blocking: run in a thread)."""
    reason = answer.reason
    if answer.kind is AnswerKind.ACCEPT:
        return client.accept(ref)
    if answer.kind is AnswerKind.DECLINE:
        return client.decline(ref, reason if isinstance(reason, DeclineReason) else "OTHER")
    if answer.kind is AnswerKind.START:
        return client.start(ref)
    if answer.kind is AnswerKind.COMPLETE:
        outcome = reason if isinstance(reason, ReferralOutcome) else "SERVICE_PROVIDED"
        return client.complete(ref, outcome)
    return client.fail(ref, reason if isinstance(reason, FailureReason) else "OTHER")


def serve(simulator: Simulator, listen: str) -> None:
    """Serve the webhooks at ``listen`` (the demo webhook URL) until SIGINT or SIGTERM."""
    where = urlsplit(listen)
    if where.scheme != "http" or where.hostname is None or where.port is None:
        raise SimulatorError(f"the demo webhook URL must be http://host:port/...; got {listen}")
    config = uvicorn.Config(
        simulator.app(),
        host=where.hostname,
        port=where.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()
