"""The key service: survivors' data keys for agencies that seal at the edge, and the seal check.

``POST /v1/survivors/{id}/data-key`` is the platform's ``GenerateDataKey``:
an agency gets the survivor's data key (made on the first call) to seal
personal data before anything leaves its hands (the SDK does it). Only the
agencies of the case get it: the owner and those it shared the case with
(from the status copy), or, before the router has seen the survivor, the
agency that asked first. Anyone else gets the 404 of an unknown survivor.
Every answer, refusals included, is audited on ``audit.v1`` first.

The same directory lets the intake refuse a sealed field that does not
open under the survivor's key (:meth:`KeyDirectory.unopenable`): clear text
labelled as a sealed value is a 400, never published.

The keys rest only on ``survivor-keys.v1``, wrapped by the keystore's KEK
(:mod:`streams.data_keys`); the clear key lives in memory for the moment
of a check or an answer, and the answer goes over TLS outside loopback.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from connectors.auth import Principal, Role
from connectors.exceptions import BrokerUnavailableError
from connectors.intake.openapi import IssuedDataKey
from connectors.intake.problems import ProblemError, broker_unavailable
from connectors.intake.publisher import Publisher
from connectors.intake.status import StatusReader, audit_read, caller, uuid_or_none
from processors.status import StatusRead
from schemas.models import Event, SurvivorEvent, SurvivorIdentified
from schemas.personal import PersonalData, PersonalDataError
from schemas.types import SealAlgorithm, Sealed
from streams.codec import EncodedRecord
from streams.data_keys import DataKeys, KeyRecord, ShreddedError, UnknownKeyError
from streams.followed import FollowedCopy, backoff_s
from streams.keystore import Keystore, KeystoreError
from streams.logs import get_logger
from streams.problems import (
    FieldError,
    forbidden,
    invalid_path_parameter,
    keys_unavailable,
    survivor_erased,
    unknown_survivor,
)
from streams.replay import ReplayReader
from streams.sealing import DataKey, SealContext, SealingError, open_sealed
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["PLATFORM", "KeyDirectory", "KeyIssue", "KeyService"]

_log = get_logger("connectors.intake")

PLATFORM = "platform"
"""The recipient of what agencies seal: the platform, which seals again for each provider."""

RETRY_AFTER_S = 2
KIND_ISSUE = "data-key.issue"
"""Audit kind of a key handed out to an agency."""
KIND_SEAL = "data-key.seal"
"""Audit kind of a key the intake used to seal an agency's clear personal data."""


class KeyIssue(StatusRead):
    """One answer of the key service, for ``audit.v1``: who asked for whose key, and what came."""

    kind: str = "data-key.issue"
    data_key_id: str | None = None
    """The data key handed out (its id, never the key); None when refused."""


class KeyDirectory(FollowedCopy[DataKeys]):
    """The intake's copy of ``survivor-keys.v1`` (:class:`FollowedCopy`), opened by ``keystore``."""

    def __init__(
        self,
        kafka: KafkaSettings,
        keystore: Keystore,
        *,
        retry_s: Callable[[int], float] = backoff_s,
        reader: Callable[..., ReplayReader] = ReplayReader,
    ) -> None:
        super().__init__(
            kafka,
            Topics.of(kafka).survivor_keys,
            name="key-directory",
            empty=lambda: DataKeys(keystore),
            apply=self._apply,
            retry_s=retry_s,
            reader=reader,
        )

    def _apply(self, copy: DataKeys, record: Any) -> None:
        try:
            survivor = UUID(bytes(record.key).decode("ascii"))
            copy.apply(survivor, None if record.value is None else bytes(record.value))
        except (TypeError, ValueError):
            self.skip(record, "record")

    async def settled(self, survivor: UUID, timeout_s: float) -> KeyRecord | None:
        """The survivor's record once this copy has read it (after a publish), or None."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            record = self.served.record(survivor)
            if record is not None:
                return record
            await asyncio.sleep(0.02)
        return None

    def unopenable(self, event: Event, pointer: str) -> list[FieldError]:
        """Where ``event`` carries a sealed value that does not open for the platform.

        503 while the copy has not caught up (a key published a moment ago
        must not be called unknown).
        """
        fields = [(name, value) for name, value in event if isinstance(value, Sealed)]
        if not fields or not isinstance(event, SurvivorEvent):
            return []
        if not self.ready:
            raise ProblemError(keys_unavailable(RETRY_AFTER_S))
        errors = []
        for name, sealed in fields:
            where = f"{pointer}/data/{name}"
            if sealed.recipient != PLATFORM:
                errors.append(FieldError(f"{where}/recipient", f"must be {PLATFORM!r}"))
                continue
            context = SealContext(event.survivor_id, event.event_type, name, PLATFORM)
            try:
                opened = open_sealed(
                    self.served.key(event.survivor_id, sealed.key_id), sealed, context
                )
            except (UnknownKeyError, SealingError, KeystoreError):  # a record that won't unwrap
                errors.append(
                    FieldError(
                        where,
                        "does not open under this survivor's data key for this event and "
                        "field: seal it with the key from POST /v1/survivors/{id}/data-key",
                    )
                )
                continue
            if isinstance(event, SurvivorIdentified) and name == "personal_data":
                try:
                    PersonalData.from_bytes(opened)
                except PersonalDataError as exc:  # names fields, never values
                    errors.append(FieldError(where, f"opens, but {exc}"))
        return errors


@dataclass
class KeyService:
    """The key route's work (see the module): who may have which key, audited, made once."""

    directory: KeyDirectory
    status: StatusReader
    publisher: Publisher
    kafka: KafkaSettings
    timeout_s: float
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def _audited(
        self,
        principal: Principal,
        survivor: UUID | None,
        code: int,
        refusal: str | None = None,
        key_id: str | None = None,
        *,
        kind: str = "data-key.issue",
    ) -> None:
        issue = KeyIssue(
            kind=kind,
            survivor_id=survivor,
            at=self.now(),
            status=code,
            refusal=refusal,
            data_key_id=key_id,
            **caller(principal),
        )
        await audit_read(self.publisher, Topics.of(self.kafka).audit, issue, self.timeout_s)

    async def issue(self, principal: Principal, survivor_id: str) -> dict[str, Any]:
        """The survivor's data key for an agency of the case; or the problem."""
        survivor = uuid_or_none(survivor_id)
        if principal.role is not Role.AGENCY or principal.agency_id is None:
            await self._audited(principal, survivor, 403, "role")
            raise ProblemError(forbidden("only agencies seal personal data; they get data keys"))
        if survivor is None:
            await self._audited(principal, None, 400, "not-a-uuid")
            raise ProblemError(
                invalid_path_parameter(
                    "survivor_id", "must be a UUID", "the survivor id must be a UUID"
                )
            )
        key, created = await self._key_for(principal, principal.agency_id, survivor, KIND_ISSUE)
        await self._audited(principal, survivor, 200, key_id=key.key_id)
        _log.info("intake.data_key_issued", principal=principal.name, survivor_id=str(survivor))
        return IssuedDataKey(
            survivor_id=str(survivor),
            key_id=key.key_id,
            algorithm=SealAlgorithm.AES_256_GCM.value,
            recipient=PLATFORM,
            key=base64.b64encode(key.material).decode(),
            created=created,
        ).model_dump()

    async def for_sealing(self, principal: Principal, agency: str, survivor: UUID) -> DataKey:
        """The key the intake seals an agency's clear personal data with (never handed out).

        The same rules and audit as :meth:`issue`, under ``kind: data-key.seal``.
        """
        key, _ = await self._key_for(principal, agency, survivor, KIND_SEAL)
        await self._audited(principal, survivor, 200, key_id=key.key_id, kind=KIND_SEAL)
        return key

    async def _key_for(
        self, principal: Principal, agency: str, survivor: UUID, kind: str
    ) -> tuple[DataKey, bool]:
        """The survivor's key if ``agency`` is of the case (made if nobody has one); else 404."""
        if not (self.directory.ready and self.status.ready):
            raise ProblemError(keys_unavailable(RETRY_AFTER_S))
        keys = self.directory.served
        record, case = keys.record(survivor), self.status.get(survivor)
        if case is not None:
            allowed: set[str] | frozenset[str] | None = case.agencies_at(self.now())
        else:
            allowed = {record.agency_id} if record is not None else None
        if allowed is not None and agency not in allowed:
            await self._audited(principal, survivor, 404, "not-the-callers-survivor", kind=kind)
            raise ProblemError(unknown_survivor())
        created = False
        try:
            if record is None:
                record = await self._generate(survivor, agency)
                created = record.agency_id == agency
                if case is None and not created:  # another agency asked a moment earlier
                    await self._audited(
                        principal, survivor, 404, "not-the-callers-survivor", kind=kind
                    )
                    raise ProblemError(unknown_survivor())
            return keys.key(survivor, record.key_id), created
        except ShreddedError:
            await self._audited(principal, survivor, 410, "erased", kind=kind)
            raise ProblemError(survivor_erased()) from None
        except KeystoreError as exc:  # a key record that does not unwrap: forged or its KEK gone
            _log.error(
                "intake.data_key_unopenable",
                survivor_id=str(survivor),
                error_class=type(exc).__name__,
            )
            raise ProblemError(keys_unavailable(RETRY_AFTER_S)) from None

    async def _generate(self, survivor: UUID, agency: str) -> KeyRecord:
        """Make a key, publish it (acknowledged), and read back which key the log kept."""
        _, record = self.directory.served.generate(survivor, agency, self.now())
        encoded = EncodedRecord(
            topic=self.directory.topic,
            key=str(survivor).encode(),
            value=record.to_bytes(),
            headers=[],
        )
        try:
            await asyncio.wait_for(self.publisher.submit(encoded), self.timeout_s)
        except (BrokerUnavailableError, TimeoutError):
            raise broker_unavailable(
                "Kafka did not acknowledge the new data key; none was handed out"
            ) from None
        kept = await self.directory.settled(survivor, self.timeout_s)
        if kept is None:
            raise ProblemError(keys_unavailable(RETRY_AFTER_S))
        return kept
