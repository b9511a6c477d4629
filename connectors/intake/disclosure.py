"""Disclosure: the chosen provider fetches the personal data it needs, sealed to its own key.

``POST /v1/survivors/{id}/referrals/{rid}/disclosure`` (provider keys only),
with ``{"public_key": "<base64 X25519>"}``. The platform

1. checks, at the moment of the call, that the referral is offered to the
   caller and still stands, the case is open and an active consent grant
   covers the referral's category (:func:`processors.disclosure.disclosable_referral`,
   on the intake's copy of ``case-status.v1``);
2. opens the survivor's ``personal_data`` (as the owning agency sealed it)
   and the referral's ``notes`` under the survivor's data key;
3. keeps the fields the category's allowlist names (:class:`DisclosurePolicy`);
4. seals them to the caller's public key (HPKE, :mod:`streams.provider_sealing`),
   bound to survivor, referral and provider;
5. audits the answer, or the refusal, on ``audit.v1`` before answering.

Why a fetch and not the fields riding on the offer: everything on a topic
must stay under the survivor's data key, so that shredding that one key
erases the survivor everywhere; a copy sealed to a provider's key on a
topic would outlive it. A fetch also makes a withdrawal of consent take
effect at once for what was not fetched yet, and leaves one audit line per
disclosure. The offer itself carries no personal data.

The sealed values come from :class:`SealedSources`, the intake's index of
``intake.v1``: the latest ``personal_data`` each agency sealed for a
survivor (only the owner's is disclosed) and the first ``notes`` of each
referral id (the request the router applied: later ones with the same id
are rejected as duplicates). The index holds ciphertexts only.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationError

from connectors.auth import Principal, Role
from connectors.intake.keys import PLATFORM, KeyDirectory
from connectors.intake.openapi import SealedDisclosure
from connectors.intake.problems import ProblemError
from connectors.intake.publisher import Publisher
from connectors.intake.status import StatusReader, audit_read, caller, uuid_or_none
from processors.disclosure import DisclosurePolicy, DisclosureRefusal, disclosable_referral
from processors.status import StatusRead
from schemas.models import ReferralRequested, SurvivorIdentified
from schemas.personal import PersonalData, PersonalDataError
from schemas.types import Sealed
from streams.cloudevents import CE_TYPE
from streams.codec import Codec
from streams.data_keys import ShreddedError, UnknownKeyError
from streams.exceptions import StreamsError
from streams.followed import FollowedCopy, backoff_s
from streams.keystore import KeystoreError
from streams.logs import get_logger
from streams.problems import (
    FieldError,
    Problem,
    forbidden,
    invalid_path_parameter,
    keys_unavailable,
    survivor_erased,
)
from streams.provider_sealing import (
    SUITE_NAME,
    DisclosureContext,
    public_key_from_b64,
    seal_disclosure,
)
from streams.replay import ReplayReader
from streams.sealing import SealContext, SealingError, open_sealed
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = [
    "DISCLOSURE_BODY_BYTES",
    "DisclosureIssue",
    "DisclosureService",
    "SealedSources",
    "Sources",
]

_log = get_logger("connectors.intake")

RETRY_AFTER_S = 2
_INDEXED = frozenset({SurvivorIdentified.event_type, ReferralRequested.event_type})
DISCLOSURE_BODY_BYTES = 1024
"""The most a disclosure request may send: a public key in a small JSON object."""


class DisclosureIssue(StatusRead):
    """One answer of the disclosure route, for ``audit.v1``: who fetched what of whom."""

    kind: str = "disclosure"
    referral_id: UUID | None = None
    fields: tuple[str, ...] = ()
    """The personal fields disclosed (names only); empty when refused."""
    notes: bool = False
    """Whether the referral's notes were disclosed."""


@dataclass
class Sources:
    """Sealed values from ``intake.v1``: ciphertexts only, never opened here."""

    personal: dict[UUID, dict[str, Sealed]] = field(default_factory=dict)
    """Survivor → agency id → the latest ``personal_data`` that agency sealed."""
    notes: dict[UUID, tuple[UUID, Sealed | None]] = field(default_factory=dict)
    """Referral id → (survivor, its notes): the first request with that id."""

    def add(self, event: object) -> None:
        if isinstance(event, SurvivorIdentified) and event.personal_data is not None:
            by_agency = self.personal.setdefault(event.survivor_id, {})
            by_agency[event.agency_id] = event.personal_data
        elif isinstance(event, ReferralRequested):
            self.notes.setdefault(event.referral_id, (event.survivor_id, event.notes))


class SealedSources(FollowedCopy[Sources]):
    """The intake's index of the sealed fields on ``intake.v1`` (:class:`FollowedCopy`).

    Only ``survivor.identified`` and ``referral.requested`` records are decoded
    (the others are skipped on their ``ce_type`` header). Memory: one sealed
    value per survivor and agency, one per referral; a replay reads the whole
    topic at start (docs/keys.md has the figures and the way out).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        codec: Codec,
        *,
        retry_s: Callable[[int], float] = backoff_s,
        reader: Callable[..., ReplayReader] = ReplayReader,
    ) -> None:
        self._codec = codec
        super().__init__(
            kafka,
            Topics.of(kafka).intake,
            name="sealed-sources",
            empty=Sources,
            apply=self._apply,
            retry_s=retry_s,
            reader=reader,
        )

    def _apply(self, copy: Sources, record: Any) -> None:
        headers = list(record.headers or ())
        if not any(
            k == CE_TYPE
            and isinstance(v, bytes | bytearray)  # a header without a value is not a type
            and bytes(v).decode("utf-8", "replace") in _INDEXED
            for k, v in headers
        ):
            return
        try:
            decoded = self._codec.decode(
                None if record.value is None else bytes(record.value),
                headers,
                topic=record.topic,
                key=None if record.key is None else bytes(record.key),
            )
        except StreamsError:
            self.skip(record, "record")
            return
        copy.add(decoded.event)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    public_key: str


@dataclass
class DisclosureService:
    """The disclosure route's work (see the module)."""

    sources: SealedSources
    directory: KeyDirectory
    status: StatusReader
    publisher: Publisher
    kafka: KafkaSettings
    policy: DisclosurePolicy
    timeout_s: float
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def _audited(
        self,
        principal: Principal,
        survivor: UUID | None,
        referral: UUID | None,
        code: int,
        *,
        refusal: str | None = None,
        fields: tuple[str, ...] = (),
        notes: bool = False,
    ) -> None:
        issue = DisclosureIssue(
            survivor_id=survivor,
            referral_id=referral,
            at=self.now(),
            status=code,
            refusal=refusal,
            fields=fields,
            notes=notes,
            **caller(principal),
        )
        await audit_read(self.publisher, Topics.of(self.kafka).audit, issue, self.timeout_s)

    async def _refuse(
        self,
        principal: Principal,
        survivor: UUID | None,
        referral: UUID | None,
        problem: Problem,
        refusal: str,
    ) -> ProblemError:
        await self._audited(principal, survivor, referral, problem.status, refusal=refusal)
        return ProblemError(problem)

    async def disclose(
        self, principal: Principal, survivor_id: str, referral_id: str, body: bytes
    ) -> dict[str, Any]:
        """The caller's disclosure for this referral, sealed to its key; or the problem."""
        survivor, referral = uuid_or_none(survivor_id), uuid_or_none(referral_id)
        if principal.role is not Role.PROVIDER or principal.provider_id is None:
            raise await self._refuse(
                principal,
                survivor,
                referral,
                forbidden("only the provider a referral is offered to fetches its disclosure"),
                "role",
            )
        if survivor is None or referral is None:
            name = "survivor_id" if survivor is None else "referral_id"
            raise await self._refuse(
                principal,
                survivor,
                referral,
                invalid_path_parameter(name, "must be a UUID", f"the {name} must be a UUID"),
                "not-a-uuid",
            )
        public_key = _public_key(body)
        if not (self.status.ready and self.directory.ready and self.sources.ready):
            raise ProblemError(keys_unavailable(RETRY_AFTER_S))
        record = self.status.get(survivor)
        offered = disclosable_referral(record, referral, principal.provider_id, self.now())
        if isinstance(offered, DisclosureRefusal):
            raise await self._refuse(principal, survivor, referral, _problem(offered), offered)
        category = offered.category
        owner = record.agency_id if record is not None else None
        try:
            personal = self._personal(survivor, owner)
            notes = self._notes(survivor, referral)
        except ShreddedError:
            raise await self._refuse(
                principal, survivor, referral, survivor_erased(), "erased"
            ) from None
        allowed = self.policy.fields_for(category)
        chosen = personal.only(allowed) if personal is not None else {}
        plaintext = json.dumps(
            {"personal_data": chosen, "notes": notes}, sort_keys=True, separators=(",", ":")
        ).encode()
        context = DisclosureContext(survivor, referral, principal.provider_id)
        sealed = seal_disclosure(public_key, plaintext, context)
        fields = tuple(sorted(chosen))
        await self._audited(
            principal, survivor, referral, 200, fields=fields, notes=notes is not None
        )
        _log.info(
            "intake.disclosed",
            principal=principal.name,
            survivor_id=str(survivor),
            referral_id=str(referral),
            fields=list(fields),
        )
        return SealedDisclosure(
            survivor_id=str(survivor),
            referral_id=str(referral),
            provider_id=str(principal.provider_id),
            category=category.value,
            suite=SUITE_NAME,
            fields=list(fields),
            notes=notes is not None,
            sealed=base64.b64encode(sealed).decode(),
        ).model_dump()

    def _open(self, survivor: UUID, event_type: str, name: str, sealed: Sealed) -> bytes | None:
        """A sealed value opened for the platform; None (logged) if it no longer opens."""
        context = SealContext(survivor, event_type, name, PLATFORM)
        try:
            key = self.directory.served.key(survivor, sealed.key_id)
            return open_sealed(key, sealed, context)
        except ShreddedError:
            raise
        except (UnknownKeyError, SealingError, KeystoreError) as exc:
            _log.error(
                "intake.disclosure_unopenable",
                survivor_id=str(survivor),
                field=name,
                error_class=type(exc).__name__,
            )
            return None

    def _personal(self, survivor: UUID, owner: str | None) -> PersonalData | None:
        sealed = self.sources.served.personal.get(survivor, {}).get(owner or "")
        if sealed is None:
            return None
        opened = self._open(survivor, SurvivorIdentified.event_type, "personal_data", sealed)
        if opened is None:
            return None
        try:
            return PersonalData.from_bytes(opened)
        except PersonalDataError:  # sealed before the vocabulary: nothing can be selected
            _log.error("intake.disclosure_unstructured", survivor_id=str(survivor))
            return None

    def _notes(self, survivor: UUID, referral: UUID) -> str | None:
        entry = self.sources.served.notes.get(referral)
        if entry is None or entry[0] != survivor or entry[1] is None:
            return None
        opened = self._open(survivor, ReferralRequested.event_type, "notes", entry[1])
        return None if opened is None else opened.decode("utf-8", "replace")


def _public_key(body: bytes) -> Any:
    """The caller's X25519 public key from the request body, or a 400."""
    try:
        request = _Request.model_validate_json(body)
        return public_key_from_b64(request.public_key)
    except (ValidationError, ValueError, SealingError):
        raise ProblemError(
            Problem(
                400,
                "invalid-request",
                "Invalid request",
                'send {"public_key": "<base64 of a raw 32-byte X25519 public key>"}',
                errors=(FieldError("/public_key", "a base64 X25519 public key (32 bytes)"),),
            )
        ) from None


def _problem(refusal: DisclosureRefusal) -> Problem:
    if not refusal.held:
        return Problem(
            404,
            "unknown-referral",
            "No such offer",
            "no referral with this id is offered to this provider for this survivor",
        )
    details = {
        DisclosureRefusal.OFFER_ENDED: "the offer no longer stands (declined, completed, "
        "cancelled or moved on); nothing is disclosed",
        DisclosureRefusal.CASE_CLOSED: "the case is closed; nothing is disclosed",
        DisclosureRefusal.CONSENT_NOT_ACTIVE: "no active consent of the survivor covers this "
        "service now (withdrawn or expired); nothing is disclosed",
    }
    return Problem(
        409,
        "disclosure-refused",
        "Disclosure refused",
        details[refusal],
        extra={"reason": refusal.value},
    )
