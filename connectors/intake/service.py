"""The request handling behind the routes: authenticate, validate, deduplicate, publish.

:class:`IntakeService` owns the long-lived parts (publisher, API keys,
idempotency store, status store) and the rule that makes retries safe:
each (source, id) is claimed in the idempotency store, published once, and
a retry is answered with the receipt of the first acknowledgement. A 202 is
given only once the broker acknowledged every new event; a partial failure
releases the claims of what was not acknowledged, so that the retry can
publish it. Too many events in flight are refused with 429 (backpressure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi.security import HTTPAuthorizationCredentials

from connectors.auth import ApiKeyStore, Principal, key_id_of
from connectors.exceptions import BrokerUnavailableError, IdempotencyStoreError
from connectors.idempotency import (
    Claim,
    ClaimOutcome,
    IdempotencyStore,
    KeyedLocks,
    fingerprint_key,
)
from connectors.intake.clear import ClearSealer
from connectors.intake.cloudevents import Item, validate_events
from connectors.intake.disclosure import DisclosureService, SealedSources
from connectors.intake.keys import KeyDirectory, KeyService
from connectors.intake.openapi import Receipt
from connectors.intake.problems import ProblemError, broker_unavailable
from connectors.intake.provider_store import ProvidersReader, ProviderStore
from connectors.intake.providers import DirectoryService
from connectors.intake.publisher import Delivery, Publisher
from connectors.intake.settings import IntakeSettings
from connectors.intake.status import StatusReader
from streams.codec import Codec
from streams.logs import get_logger
from streams.problems import FieldError, Problem, invalid_key, unauthenticated
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["INTAKE_SOURCE", "MAX_RECORD_BYTES", "IntakeService"]

INTAKE_SOURCE = "/safepassage/intake"
"""The codec's own source; every record carries its caller's source instead."""

MAX_RECORD_BYTES = 900_000
"""Below librdkafka's ``message.max.bytes`` (1,000,000): too large is a 413, not a 503."""

_log = get_logger("connectors.intake")


@dataclass
class _Outcome:
    """What became of the unique events of one request."""

    receipts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    replayed: set[tuple[str, str]] = field(default_factory=set)


def _new_claims(items: Sequence[Item], claims: Sequence[Claim]) -> list[tuple[Item, str]]:
    """The items this request claimed first, with their claim tokens."""
    return [
        (item, claim.token)
        for item, claim in zip(items, claims, strict=False)
        if claim.outcome is ClaimOutcome.NEW and claim.token is not None
    ]


class IntakeService:
    """The long-lived parts and the request handling behind the routes.

    It owns the status store, the key directory and the provider directory's copy too, so
    that they read while the app serves.
    """

    def __init__(
        self,
        settings: IntakeSettings,
        kafka: KafkaSettings,
        *,
        publisher: Publisher,
        keys: ApiKeyStore,
        store: IdempotencyStore,
        status: StatusReader,
        directory: KeyDirectory,
        sources: SealedSources | None = None,
        providers: ProvidersReader | None = None,
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self.publisher = publisher
        self.keys = keys
        self.store = store
        self.status = status
        self.directory = directory
        self.data_keys = KeyService(
            directory, status, publisher, kafka, timeout_s=settings.publish_timeout_s
        )
        self.codec = Codec(kafka, source=INTAKE_SOURCE, max_record_bytes=MAX_RECORD_BYTES)
        self.sources = sources or SealedSources(kafka, self.codec)
        self.clear = ClearSealer(
            self.data_keys, fingerprint_key=fingerprint_key(settings.state_dir / "fingerprint.key")
        )
        self.disclosures = DisclosureService(
            self.sources,
            directory,
            status,
            publisher,
            kafka,
            settings.disclosure_policy,
            timeout_s=settings.publish_timeout_s,
        )
        self.providers = providers or ProviderStore(kafka, self.codec)
        self.directory_api = DirectoryService(
            self.providers, publisher, kafka, self.codec, timeout_s=settings.publish_timeout_s
        )
        self.topic_of = Topics.of(kafka).inbound_by_type  # the one inbound rule
        self.locks = KeyedLocks()
        self.in_flight = 0

    async def open(self) -> None:
        """Start serving: open what :meth:`close` closed (a lifespan may run more than once)."""
        self.store.open()
        await self.publisher.start()
        await self.status.start()
        await self.directory.start()
        await self.sources.start()
        await self.providers.start()
        _log.info(
            "intake.started",
            bootstrap=self.kafka.bootstrap_servers,
            namespace=self.kafka.topic_namespace,
            keys=len(self.keys.entries),
        )

    async def close(self) -> None:
        """Stop serving: deliver what is queued, then let go of every connection."""
        await self.providers.close()
        await self.sources.close()
        await self.directory.close()
        await self.status.close()
        await self.publisher.close()
        self.store.close()

    def authenticate(self, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        """The caller, or 401 with ``WWW-Authenticate: Bearer``."""
        if credentials is None or not credentials.credentials:
            raise ProblemError(unauthenticated())
        principal = self.keys.authenticate(credentials.credentials)
        if principal is None:
            _log.info("intake.unauthenticated", key_id=key_id_of(credentials.credentials))
            raise ProblemError(invalid_key())
        return principal

    def validate(
        self,
        principal: Principal,
        documents: Sequence[Any],
        batch: bool,
        digests: Sequence[str | None] = (),
    ) -> list[Item]:
        """Every event checked before anything is published (see :func:`validate_events`)."""
        return validate_events(
            principal,
            documents,
            batch,
            codec=self.codec,
            topic_of=self.topic_of,
            sealed_check=self.directory.unopenable,
            digests=digests,
        )

    async def accept(self, principal: Principal, items: Sequence[Item]) -> tuple[list[Any], bool]:
        """Publish what is new, replay what was acknowledged before; receipts in order."""
        first: dict[tuple[str, str], Item] = {}
        for item in items:
            first.setdefault(item.key, item)
        unique = list(first.values())  # in the order sent: per-survivor order is kept
        if self.in_flight + len(unique) > self.settings.max_in_flight:
            detail = f"more than {self.settings.max_in_flight} events are being published; retry"
            raise ProblemError(
                Problem(
                    429,
                    "too-many-in-flight",
                    "Too many events in flight",
                    detail,
                    headers={"Retry-After": "1"},
                )
            )
        self.in_flight += len(unique)
        # Shielded: a client that hangs up must not leave its claims pending; the
        # publish runs to its end, holding its locks and in-flight places until then.
        outcome = await asyncio.shield(self._accept_unique(principal, unique))
        receipts = [outcome.receipts[item.key] for item in items]
        replayed = bool(unique) and all(item.key in outcome.replayed for item in unique)
        return receipts, replayed

    async def _accept_unique(self, principal: Principal, unique: list[Item]) -> _Outcome:
        try:
            async with self.locks.hold(item.key for item in unique):
                return await self._claim_and_publish(principal, unique)
        finally:
            self.in_flight -= len(unique)

    async def _claim_and_publish(self, principal: Principal, unique: list[Item]) -> _Outcome:
        """Claim every key; replay, conflict or publish; record the outcome in the store."""
        outcome = _Outcome()
        claims = await asyncio.to_thread(self._claim_all, unique)
        conflicts = [
            FieldError(f"{item.pointer}/id", "this source and id were used for another event")
            for item, claim in zip(unique, claims, strict=True)
            if claim.outcome is ClaimOutcome.CONFLICT
        ]
        busy = any(claim.outcome is ClaimOutcome.IN_PROGRESS for claim in claims)
        new = _new_claims(unique, claims)
        if conflicts or busy:
            await asyncio.to_thread(self._release_all, new)
            raise ProblemError(
                Problem(
                    409,
                    "idempotency-conflict",
                    "Event id already used",
                    "an event with this source and id was accepted with different content "
                    "(or from another principal); use a new id for a new event",
                    errors=tuple(conflicts),
                )
                if conflicts
                else Problem(
                    409,
                    "in-progress",
                    "Event is being published",
                    "another request is publishing this event right now; retry shortly",
                    headers={"Retry-After": "1"},
                )
            )
        for item, claim in zip(unique, claims, strict=True):
            if claim.outcome is ClaimOutcome.REPLAY and claim.response is not None:
                outcome.receipts[item.key] = dict(claim.response)
                outcome.replayed.add(item.key)
                self._log_accepted(principal, item, outcome.receipts[item.key], replayed=True)
        if not new:
            return outcome
        if not await self.publisher.ready():
            # Known down: answer at once instead of waiting out the publish timeout.
            # Acknowledged events were replayed above: they are on Kafka whatever now.
            await asyncio.to_thread(self._release_all, new)
            raise broker_unavailable("Kafka cannot be reached; nothing was published")
        deliveries = await self._publish([item for item, _ in new])
        acked: list[tuple[Item, str, dict[str, Any]]] = []
        failed: list[tuple[Item, str]] = []
        for (item, token), delivery in zip(new, deliveries, strict=True):
            if isinstance(delivery, Delivery):
                receipt = Receipt(
                    id=item.ce_id,
                    source=item.source,
                    type=item.event.event_type,
                    topic=delivery.topic,
                    partition=delivery.partition,
                    offset=delivery.offset,
                ).model_dump()
                acked.append((item, token, receipt))
                outcome.receipts[item.key] = receipt
                self._log_accepted(principal, item, receipt, replayed=False)
            else:
                failed.append((item, token))
                _log.warning(
                    "intake.not_acknowledged",
                    ce_id=item.ce_id,
                    ce_type=item.event.event_type,
                    principal=principal.name,
                    role=principal.role.value,
                    reason=str(delivery),
                )
        await asyncio.to_thread(self._settle_claims, acked, failed)
        if failed:
            accepted = [
                outcome.receipts[item.key] for item in unique if item.key in outcome.receipts
            ]
            raise broker_unavailable(
                f"Kafka did not acknowledge {len(failed)} of {len(unique)} events; retry them "
                "all (the acknowledged ones will not be published again)",
                accepted=accepted,
            )
        return outcome

    async def _publish(self, items: Sequence[Item]) -> list[Delivery | BaseException]:
        """Enqueue in order (per-survivor order is kept), then await every ack."""
        timeout = self.settings.publish_timeout_s + 2.0
        pending: list[Awaitable[Delivery] | BaseException] = []
        for item in items:
            try:
                pending.append(self.publisher.submit(item.record))
            except BrokerUnavailableError as exc:
                pending.append(exc)

        async def settle(entry: Awaitable[Delivery] | BaseException) -> Delivery:
            if isinstance(entry, BaseException):
                raise entry
            try:
                return await asyncio.wait_for(entry, timeout)
            except TimeoutError:
                raise BrokerUnavailableError("no acknowledgement within the timeout") from None

        results = await asyncio.gather(
            *(settle(entry) for entry in pending), return_exceptions=True
        )
        return list(results)

    def _claim_all(self, items: Sequence[Item]) -> list[Claim]:
        """Claim each key; on a store failure, release what this request claimed."""
        claims: list[Claim] = []
        try:
            for item in items:
                claims.append(self.store.claim(item.key, item.digest))
        except IdempotencyStoreError:
            self._release_all(_new_claims(items, claims))
            raise
        return claims

    def _release_all(self, claimed: Sequence[tuple[Item, str]]) -> None:
        """Give claims back after a failure, so that the retry can publish."""
        for item, token in claimed:
            self.store.release(item.key, token)

    def _settle_claims(
        self,
        acked: Sequence[tuple[Item, str, dict[str, Any]]],
        failed: Sequence[tuple[Item, str]],
    ) -> None:
        """Record receipts of acknowledged events; release the claims of the others."""
        for item, token, receipt in acked:
            self.store.ack(item.key, token, receipt)
        self._release_all(failed)

    @staticmethod
    def _log_accepted(
        principal: Principal, item: Item, receipt: Mapping[str, Any], *, replayed: bool
    ) -> None:
        _log.info(
            "intake.accepted",
            ce_id=item.ce_id,
            ce_type=item.event.event_type,
            principal=principal.name,
            role=principal.role.value,
            topic=receipt["topic"],
            partition=receipt["partition"],
            offset=receipt["offset"],
            replayed=replayed,
        )
