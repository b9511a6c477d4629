"""The directory API's work: who may change the provider directory, how, and the audit of it.

Directory administrators (role ``directory-admin``) register, update and
import providers; a provider reports its own capacity (an administrator
any provider's); administrators and operators read the directory, a provider
its own entry. Every change is a directory event on ``providers.v1`` under
the caller's source (``/directory-admins/<name>`` or ``/providers/<id>``),
which the router accepts from exactly these senders
(:func:`processors.senders.directory_refusal`).

Each change and each refusal is written to ``audit.v1`` (keyed by provider
id, or by the caller when there is none) and acknowledged by Kafka together
with the events before the answer; then the answer waits, within the publish
timeout, until the intake's own copy of the directory shows the change, so
that a read right after a write sees it. Reads are not audited (the
directory is the providers' public listing), their refusals are. Errors are
problem+json: 400 with the field, 403, 404, 409 for a second registration
of an id, 503 while the copy catches up or Kafka is away.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, ValidationError

from connectors.auth import (
    Principal,
    authorize_capacity_report,
    authorize_directory_change,
    authorize_directory_read,
)
from connectors.directory.entries import (
    CapacityFigure,
    DirectoryEntry,
    EntryFields,
    ImportReport,
    NewProvider,
    ProviderView,
)
from connectors.directory.hsds import dumps, page, read_listings, service_document
from connectors.exceptions import BrokerUnavailableError, ForbiddenError, HsdsImportError
from connectors.idempotency import KeyedLocks
from connectors.intake.problems import ProblemError, broker_unavailable, pydantic_errors
from connectors.intake.provider_store import ProviderRecord, ProvidersReader
from connectors.intake.publisher import Publisher
from schemas.models import ProviderEvent, ProviderRegistered, ProviderUpdated
from schemas.types import HSDS_DOCUMENT_MAX_CHARS
from streams.codec import Codec, EncodedRecord
from streams.exceptions import EncodeError
from streams.logs import get_logger
from streams.problems import FieldError, Problem, forbidden, invalid_path_parameter
from streams.producing import Delivery
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["DirectoryChange", "DirectoryService"]

_log = get_logger("connectors.intake")

RETRY_AFTER_S = 2
M = TypeVar("M", bound=BaseModel)


class DirectoryChange(BaseModel):
    """One change of the directory, or one refused request, for ``audit.v1``.

    Who (principal, role, key id; never the key), what (action, the event
    published and its id, or why it was refused), of which provider, when.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = "directory.change"
    action: str
    """``register``, ``update``, ``import``, ``capacity``, ``read``."""
    provider_id: UUID | None
    at: datetime
    principal: str
    role: str
    key_id: str
    status: int
    """The HTTP status answered."""
    event_type: str | None = None
    event_id: str | None = None
    refusal: str | None = None


def _unknown_provider() -> ProblemError:
    return ProblemError(
        Problem(404, "unknown-provider", "Unknown provider", "no provider with this id")
    )


def _not_ready() -> ProblemError:
    return ProblemError(
        Problem(
            503,
            "directory-unavailable",
            "Directory not available yet",
            "the intake is still reading the provider directory; retry shortly",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    )


def _invalid(detail: str, errors: Sequence[FieldError]) -> Problem:
    return Problem(400, "invalid-request", "Invalid request", detail, tuple(errors))


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def view_of(record: ProviderRecord) -> ProviderView:
    """The API's view of a provider (built without re-validating what the topic holds)."""
    event = record.entry
    assert event is not None  # noqa: S101 - only registered records are viewed
    fields = event.model_dump(exclude={"occurred_at", "hsds_service"})
    capacities = tuple(
        CapacityFigure.model_construct(category=c.category, total=c.total, available=c.available)
        for _, c in sorted(record.capacities.items())
    )
    return ProviderView.model_construct(
        **fields,
        capacities=capacities,
        updated_at=record.updated_at,
        hsds=event.hsds_service is not None,
    )


def hsds_of(record: ProviderRecord) -> dict[str, Any]:
    """The HSDS 3.0 service of a provider: its kept document with the entry's say."""
    event = record.entry
    assert event is not None  # noqa: S101 - only registered records are exported
    kept: Any = None
    if event.hsds_service is not None:
        try:
            kept = json.loads(event.hsds_service)
        except ValueError:
            kept = None
    entry = DirectoryEntry.model_construct(
        **event.model_dump(exclude={"occurred_at", "hsds_service"})
    )
    capacities = [CapacityFigure.of_event(c) for c in record.capacities.values()]
    return service_document(entry, capacities, kept if isinstance(kept, dict) else None)


@dataclass
class DirectoryService:
    """The routes' work (see the module)."""

    store: ProvidersReader
    publisher: Publisher
    kafka: KafkaSettings
    codec: Codec
    timeout_s: float
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    locks: KeyedLocks = field(default_factory=KeyedLocks)

    # ----------------------------------------------------------------- audit

    def _audit_record(self, principal: Principal, change: DirectoryChange) -> EncodedRecord:
        key = str(change.provider_id) if change.provider_id is not None else principal.name
        value = json.dumps(change.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)
        topic = Topics.of(self.kafka).audit
        return EncodedRecord(topic=topic, key=key.encode(), value=value.encode(), headers=[])

    def _change(
        self, principal: Principal, action: str, provider: UUID | None, status: int, **more: Any
    ) -> DirectoryChange:
        return DirectoryChange(
            action=action,
            provider_id=provider,
            at=self.now(),
            principal=principal.name,
            role=principal.role.value,
            key_id=principal.key_id,
            status=status,
            **more,
        )

    async def _refuse(
        self,
        principal: Principal,
        action: str,
        provider: UUID | None,
        problem: Problem,
        refusal: str,
    ) -> ProblemError:
        """Audit a refusal (acknowledged), then the problem to raise."""
        change = self._change(principal, action, provider, problem.status, refusal=refusal)
        await self._settle([self._audit_record(principal, change)])
        _log.info(
            "intake.directory_refused",
            principal=principal.name,
            role=principal.role.value,
            action=action,
            provider_id=str(provider) if provider is not None else None,
            status=problem.status,
            refusal=refusal,
        )
        return ProblemError(problem)

    async def _settle(self, records: Sequence[EncodedRecord]) -> list[Delivery]:
        """Submit in order, await every acknowledgement; 503 if one is missing."""
        pending = []
        try:
            for record in records:
                pending.append(self.publisher.submit(record))
            results = await asyncio.wait_for(
                asyncio.gather(*pending, return_exceptions=True), self.timeout_s + 2.0
            )
        except (BrokerUnavailableError, TimeoutError):
            results = [BrokerUnavailableError("not acknowledged")]
        deliveries = [r for r in results if isinstance(r, Delivery)]
        if len(deliveries) != len(records):
            raise broker_unavailable(
                f"Kafka did not acknowledge {len(records) - len(deliveries)} of {len(records)} "
                "records; retry (a repeated update, import or capacity report changes nothing)"
            )
        return deliveries

    async def _publish(
        self, principal: Principal, action: str, status: int, events: Sequence[ProviderEvent]
    ) -> None:
        """The events and their audit records, acknowledged; then visible in the copy."""
        topic = Topics.of(self.kafka).providers
        records, audits = [], []
        for event in events:
            event_id = str(uuid4())
            try:
                records.append(
                    self.codec.encode(event, topic, event_id=event_id, source=principal.source_root)
                )
            except EncodeError as exc:
                raise ProblemError(
                    _invalid(str(exc), [FieldError("", "the entry cannot be encoded")])
                ) from None
            change = self._change(
                principal,
                action,
                event.provider_id,
                status,
                event_type=event.event_type,
                event_id=event_id,
            )
            audits.append(self._audit_record(principal, change))
        deliveries = await self._settle([*records, *audits])
        for event in events:
            _log.info(
                "intake.directory_changed",
                principal=principal.name,
                action=action,
                provider_id=str(event.provider_id),
                ce_type=event.event_type,
            )
        if not await self.store.wait_visible(deliveries[: len(records)], self.timeout_s):
            _log.warning("intake.directory_not_visible_yet", action=action, events=len(records))

    # ----------------------------------------------------------------- helpers

    def _ready(self) -> None:
        if not self.store.ready:
            raise _not_ready()

    def _record(self, provider: UUID) -> ProviderRecord | None:
        record = self.store.served.records.get(provider)
        return record if record is not None and record.entry is not None else None

    @staticmethod
    def _body(body: bytes, model: type[M]) -> M:
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            detail = "the body is not a valid " + model.__name__ + "; see errors"
            raise ProblemError(_invalid(detail, pydantic_errors(exc, ""))) from None

    async def _authorized(
        self,
        principal: Principal,
        action: str,
        provider: UUID | None,
        check: Callable[[], None],
    ) -> None:
        try:
            check()
        except ForbiddenError as exc:
            raise await self._refuse(
                principal, action, provider, forbidden(str(exc)), "role"
            ) from None

    # ----------------------------------------------------------------- reads

    async def listing(self, principal: Principal) -> list[dict[str, Any]]:
        """Every registered provider (administrators and operators)."""
        await self._authorized(principal, "read", None, lambda: authorize_directory_read(principal))
        self._ready()
        return [view_of(r).model_dump(mode="json") for r in self.store.served.listed()]

    async def export(self, principal: Principal) -> dict[str, Any]:
        """The directory as an HSDS 3.0 page (administrators and operators)."""
        await self._authorized(principal, "read", None, lambda: authorize_directory_read(principal))
        self._ready()
        return page([hsds_of(r) for r in self.store.served.listed()])

    async def read(self, principal: Principal, provider_id: str) -> dict[str, Any]:
        """One provider: administrators and operators any, a provider its own."""
        provider = _uuid(provider_id)
        await self._authorized(
            principal, "read", provider, lambda: authorize_directory_read(principal, provider)
        )
        if provider is None:
            raise ProblemError(
                invalid_path_parameter("provider_id", "must be a UUID", "the id must be a UUID")
            )
        self._ready()
        record = self._record(provider)
        if record is None:
            raise _unknown_provider()
        return view_of(record).model_dump(mode="json")

    # ----------------------------------------------------------------- changes

    async def register(self, principal: Principal, body: bytes) -> dict[str, Any]:
        """A new provider (``provider.registered``); 409 when its id is registered already."""
        await self._authorized(
            principal, "register", None, lambda: authorize_directory_change(principal)
        )
        self._ready()
        try:
            new = self._body(body, NewProvider)
        except ProblemError as exc:
            raise await self._refuse(principal, "register", None, exc.problem, "invalid") from None
        provider = new.provider_id or uuid4()
        fields = EntryFields.model_validate(new.model_dump(exclude={"provider_id"}))
        async with self.locks.hold([("provider", str(provider))]):
            if self._record(provider) is not None:
                conflict = Problem(
                    409,
                    "provider-exists",
                    "Provider already registered",
                    "a provider with this id is registered; update it with PUT /v1/providers/{id}",
                    (FieldError("/provider_id", "already registered"),),
                )
                raise await self._refuse(principal, "register", provider, conflict, "exists")
            event = DirectoryEntry.of(provider, fields).registered(self.now(), None)
            await self._publish(principal, "register", 201, [event])
        return self._view_after(provider, event)

    async def update(self, principal: Principal, provider_id: str, body: bytes) -> dict[str, Any]:
        """The whole entry replaced (``provider.updated``); its kept HSDS document stays."""
        provider = _uuid(provider_id)
        await self._authorized(
            principal, "update", provider, lambda: authorize_directory_change(principal)
        )
        if provider is None:
            problem = invalid_path_parameter(
                "provider_id", "must be a UUID", "the id must be a UUID"
            )
            raise await self._refuse(principal, "update", None, problem, "not-a-uuid")
        self._ready()
        try:
            fields = self._body(body, EntryFields)
        except ProblemError as exc:
            raise await self._refuse(
                principal, "update", provider, exc.problem, "invalid"
            ) from None
        async with self.locks.hold([("provider", str(provider))]):
            record = self._record(provider)
            if record is None or record.entry is None:
                raise await self._refuse(
                    principal, "update", provider, _unknown_provider().problem, "unknown"
                )
            kept = record.entry.hsds_service
            event = DirectoryEntry.of(provider, fields).updated(self.now(), kept)
            await self._publish(principal, "update", 200, [event])
        return self._view_after(provider, event)

    async def capacity(self, principal: Principal, provider_id: str, body: bytes) -> dict[str, Any]:
        """A capacity report (``provider.capacity``): the provider itself, or an administrator."""
        provider = _uuid(provider_id)
        await self._authorized(
            principal, "capacity", provider, lambda: authorize_capacity_report(principal, provider)
        )
        if provider is None:
            problem = invalid_path_parameter(
                "provider_id", "must be a UUID", "the id must be a UUID"
            )
            raise await self._refuse(principal, "capacity", None, problem, "not-a-uuid")
        self._ready()
        try:
            figure = self._body(body, CapacityFigure)
        except ProblemError as exc:
            raise await self._refuse(
                principal, "capacity", provider, exc.problem, "invalid"
            ) from None
        record = self._record(provider)
        if record is None or record.entry is None:
            raise await self._refuse(
                principal, "capacity", provider, _unknown_provider().problem, "unknown"
            )
        if figure.category not in record.entry.categories:
            problem = _invalid(
                "the provider does not offer this category",
                [FieldError("/category", "not one of the provider's categories")],
            )
            raise await self._refuse(principal, "capacity", provider, problem, "category")
        await self._publish(principal, "capacity", 200, [figure.event(provider, self.now())])
        record = self._record(provider)
        assert record is not None  # noqa: S101 - it was there a moment ago, nothing deletes
        return view_of(record).model_dump(mode="json")

    async def import_hsds(self, principal: Principal, document: Any) -> dict[str, Any]:
        """Every service of an HSDS 3.0 document, registered or updated; all or nothing.

        The whole document is checked first; one error anywhere and nothing
        is published (400 listing every error, by JSON Pointer). Then each
        provider's entry (``provider.registered`` when new, ``provider.updated``
        when known) and its capacity reports are published.
        """
        await self._authorized(
            principal, "import", None, lambda: authorize_directory_change(principal)
        )
        self._ready()
        try:
            listings = read_listings(document)
            texts = [dumps(listing.document) for listing in listings]
            too_large = [
                FieldError(f"/contents/{i}", f"over {HSDS_DOCUMENT_MAX_CHARS} characters")
                for i, text in enumerate(texts)
                if len(text) > HSDS_DOCUMENT_MAX_CHARS
            ]
            if too_large:
                raise ProblemError(_invalid("services too large to keep", too_large))
        except HsdsImportError as exc:
            problem = Problem(
                400,
                "invalid-hsds",
                "Invalid HSDS document",
                f"nothing was imported: {len(exc.errors)} error(s); see errors",
                tuple(FieldError(where, what) for where, what in exc.errors),
            )
            raise await self._refuse(principal, "import", None, problem, "invalid-hsds") from None
        except ProblemError as exc:
            raise await self._refuse(principal, "import", None, exc.problem, "invalid") from None
        keys = [("provider", str(listing.entry.provider_id)) for listing in listings]
        async with self.locks.hold(keys):
            events: list[ProviderEvent] = []
            registered, updated = [], []
            at = self.now()
            for listing, text in zip(listings, texts, strict=True):
                pid = listing.entry.provider_id
                if self._record(pid) is None:
                    events.append(listing.entry.registered(at, text))
                    registered.append(pid)
                else:
                    events.append(listing.entry.updated(at, text))
                    updated.append(pid)
            reports = [f.event(li.entry.provider_id, at) for li in listings for f in li.capacities]
            await self._publish(principal, "import", 200, [*events, *reports])
        report = ImportReport(
            registered=tuple(registered), updated=tuple(updated), capacity_reports=len(reports)
        )
        return report.model_dump(mode="json")

    def _view_after(
        self, provider: UUID, event: ProviderRegistered | ProviderUpdated
    ) -> dict[str, Any]:
        """The provider as the copy shows it now (or, if it is slow, as just written)."""
        record = self._record(provider)
        if record is None or record.entry != event:
            capacities = record.capacities if record is not None else {}
            record = ProviderRecord(provider, event, dict(capacities), event.occurred_at)
        return view_of(record).model_dump(mode="json")
