"""The agency SDK: one typed method per event an agency publishes.

Each method builds the :mod:`schemas.models` event (a contract violation is
an :class:`~connectors.exceptions.SdkValidationError` before anything leaves
the process), publishes it under the agency's source through a
:class:`~connectors.sdk.transport.Transport` and returns its CloudEvents id
once acknowledged. A caller retrying a logical operation passes the first
try's ``event_id`` and ``occurred_at``, so the platform drops the second as a
copy (``docs/sdk.md``, Idempotency). Log lines carry ids, never contents.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import SecretStr, TypeAdapter, ValidationError

from connectors.exceptions import SdkValidationError
from connectors.sdk.events import (
    RememberedTimes,
    build_event,
    check_event_id,
    invalid_event,
    utc_now,
)
from connectors.sdk.http_transport import HttpTransport
from connectors.sdk.kafka_transport import KafkaTransport
from connectors.sdk.keys import KeyClient
from connectors.sdk.retry import RetryPolicy
from connectors.sdk.transport import Closing, Outgoing, Transport
from schemas.models import (
    CaseClosed,
    CaseShared,
    CaseUnshared,
    ConsentGranted,
    ConsentWithdrawn,
    Event,
    ReferralCancelled,
    ReferralRequested,
    RiskAssessed,
    SurvivorErasureRequested,
    SurvivorIdentified,
)
from schemas.personal import PersonalData, PersonalDataError
from schemas.types import (
    Actor,
    AgeBand,
    AgeGroup,
    CancelReason,
    CaseOutcome,
    Gender,
    Identifier,
    ImmediateNeed,
    Requirements,
    RiskLevel,
    Sealed,
    ServiceCategory,
    Urgency,
)
from streams.contract import AGENCY_EVENTS
from streams.settings import KafkaSettings

__all__ = ["AgencyClient"]

_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)


class AgencyClient(Closing):
    """Publishes one agency's events; thread-safe, as the transports are.

    Use it as a context manager (or call :meth:`close`) so queued records are
    flushed and connections closed.
    """

    def __init__(
        self,
        agency_id: str,
        transport: Transport,
        *,
        source: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        keys: KeyClient | None = None,
    ) -> None:
        """Publish as ``agency_id`` (e.g. ``agency:nl-police``) through ``transport``.

        ``source`` defaults to ``/agencies/<agency_id>``: the CloudEvents
        source names the organisation, never a person, and together with the
        id it names one fact. ``clock`` gives ``occurred_at`` when a call
        does not (tests pass a fixed one). ``keys`` seals personal data
        passed in clear (:mod:`connectors.sdk.keys`); without it, only values
        sealed already are accepted.
        """
        try:
            self.agency_id = _IDENTIFIER.validate_python(agency_id)
        except ValidationError as exc:
            raise invalid_event("agency client", exc) from None
        self.source = source if source is not None else f"/agencies/{self.agency_id}"
        if not 0 < len(self.source) <= 512 or any(not "!" <= ch <= "~" for ch in self.source):
            raise SdkValidationError("source must be a URI-reference without spaces, at most 512")
        self.transport = transport
        self.keys = keys
        self._clock = clock
        self._times = RememberedTimes()

    @classmethod
    def over_kafka(
        cls,
        agency_id: str,
        settings: KafkaSettings,
        *,
        retry: RetryPolicy | None = None,
        delivery_timeout_s: float = 30.0,
        source: str | None = None,
        key_service: tuple[str, SecretStr | str] | None = None,
    ) -> AgencyClient:
        """A client writing to its own party topic with its own idempotent producer.

        ``key_service`` (the intake API's base URL and the agency's API key)
        lets it seal personal data passed in clear.
        """
        transport = KafkaTransport(settings, retry=retry, delivery_timeout_s=delivery_timeout_s)
        keys = None
        if key_service is not None:
            url, api_key = key_service
            keys = KeyClient(HttpTransport(url, api_key, retry=retry), owns_transport=True)
        return cls(agency_id, transport, source=source, keys=keys)

    @classmethod
    def over_http(
        cls,
        agency_id: str,
        base_url: str,
        api_key: SecretStr | str,
        *,
        retry: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        source: str | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> AgencyClient:
        """A client POSTing to the intake API at ``base_url`` with the agency's API key.

        ``verify``: the intake's certificate is checked against the system's
        trust store, or against the CA of an ``ssl.SSLContext`` given here.
        """
        transport = HttpTransport(
            base_url, api_key, retry=retry, timeout_s=timeout_s, verify=verify
        )
        return cls(agency_id, transport, source=source, keys=KeyClient(transport))

    # ------------------------------------------------------------------ one method per event

    def identify_survivor(
        self,
        survivor_id: UUID | str,
        *,
        jurisdiction: str,
        age_group: AgeGroup | str,
        languages: Iterable[str],
        gender: Gender | str,
        age_band: AgeBand | str | None = None,
        personal_data: PersonalData | Mapping[str, str] | Sealed | None = None,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """``survivor.identified``: a presumed survivor and the pseudonym the agency issued.

        ``age_group`` UNKNOWN (age uncertain) is routed as a minor. Personal
        data travels only sealed: pass it in clear, as a
        :class:`~schemas.personal.PersonalData` or a mapping of its field names
        (``name``, ``contact``, ``medical``...), and it is sealed here, before
        it leaves this process. The fields are what lets the platform give each
        provider only those its service needs (PRIVACY.md).
        """
        return self._send(
            SurvivorIdentified,
            survivor_id,
            occurred_at,
            event_id,
            jurisdiction=jurisdiction,
            age_group=age_group,
            age_band=age_band,
            languages=tuple(languages),
            gender=gender,
            personal_data=self._sealed(
                _personal_plaintext(personal_data), survivor_id, SurvivorIdentified, "personal_data"
            ),
        )

    def grant_consent(
        self,
        survivor_id: UUID | str,
        *,
        consent_id: UUID | str,
        categories: Iterable[ServiceCategory | str],
        cross_border_allowed: bool,
        jurisdictions: Iterable[str] = (),
        expires_at: datetime | None = None,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """``consent.granted``: what may be shared, for which services, where, until when.

        ``consent_id`` is the agency's id of the grant: a later
        :meth:`withdraw_consent` names it. An empty ``jurisdictions`` means
        the survivor's home jurisdiction only.
        """
        return self._send(
            ConsentGranted,
            survivor_id,
            occurred_at,
            event_id,
            consent_id=consent_id,
            categories=tuple(categories),
            cross_border_allowed=cross_border_allowed,
            jurisdictions=tuple(jurisdictions),
            expires_at=expires_at,
        )

    def withdraw_consent(
        self,
        survivor_id: UUID | str,
        *,
        consent_id: UUID | str,
        categories: Iterable[ServiceCategory | str] = (),
        jurisdictions: Iterable[str] = (),
        cross_border_withdrawn: bool = False,
        erasure_requested: bool = False,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """``consent.withdrawn``: the whole grant by default, or the listed part of it.

        The whole grant is the default because it is what a survivor saying
        "stop" means. ``cross_border_withdrawn`` removes cross-border sharing
        from a grant that otherwise stays. ``erasure_requested`` also erases
        the survivor's data (see :meth:`request_erasure`).
        """
        return self._send(
            ConsentWithdrawn,
            survivor_id,
            occurred_at,
            event_id,
            consent_id=consent_id,
            categories=tuple(categories),
            jurisdictions=tuple(jurisdictions),
            cross_border_withdrawn=cross_border_withdrawn,
            erasure_requested=erasure_requested,
        )

    def request_erasure(
        self,
        survivor_id: UUID | str,
        *,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """``survivor.erasure_requested``: erase the survivor's data, for good.

        The platform destroys their data key (every sealed value about them
        becomes unreadable), tombstones their status, cancels open referrals
        telling providers to erase, and refuses every later event about them.
        The owning agency's to ask; it cannot be undone.
        """
        if self.keys is not None:
            survivor = survivor_id if isinstance(survivor_id, UUID) else UUID(str(survivor_id))
            self.keys.forget(survivor)
        return self._send(SurvivorErasureRequested, survivor_id, occurred_at, event_id)

    def assess_risk(
        self,
        survivor_id: UUID | str,
        *,
        level: RiskLevel | str,
        immediate_needs: Iterable[ImmediateNeed | str] = (),
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """``risk.assessed``: the risk level and needs that must be met at once."""
        return self._send(
            RiskAssessed,
            survivor_id,
            occurred_at,
            event_id,
            level=level,
            immediate_needs=tuple(immediate_needs),
        )

    def request_referral(
        self,
        survivor_id: UUID | str,
        *,
        referral_id: UUID | str,
        category: ServiceCategory | str,
        urgency: Urgency | str,
        jurisdiction: str,
        languages: Iterable[str] = (),
        gender_specific: bool = False,
        child_specialised: bool = False,
        accessibility: bool = False,
        notes: Sealed | bytes | str | None = None,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """``referral.requested``: ask for one service of one category.

        ``referral_id`` is the agency's own id of the referral (it names the
        referral in every later event; keep it to cancel). The keyword
        arguments from ``jurisdiction`` to ``accessibility`` are the
        referral's requirements.
        """
        try:
            requirements = Requirements(
                languages=tuple(languages),
                gender_specific=gender_specific,
                child_specialised=child_specialised,
                accessibility=accessibility,
                jurisdiction=jurisdiction,
            )
        except ValidationError as exc:
            raise invalid_event(ReferralRequested, exc) from None
        return self._send(
            ReferralRequested,
            survivor_id,
            occurred_at,
            event_id,
            referral_id=referral_id,
            category=category,
            urgency=urgency,
            requirements=requirements,
            notes=self._sealed(notes, survivor_id, ReferralRequested, "notes"),
        )

    def cancel_referral(
        self,
        survivor_id: UUID | str,
        *,
        referral_id: UUID | str,
        reason: CancelReason | str = CancelReason.AGENCY_REQUEST,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """``referral.cancelled`` by the agency; the router tells the provider holding it."""
        return self._send(
            ReferralCancelled,
            survivor_id,
            occurred_at,
            event_id,
            referral_id=referral_id,
            reason=reason,
            cancelled_by=Actor.AGENCY,
        )

    def close_case(
        self,
        survivor_id: UUID | str,
        *,
        outcome: CaseOutcome | str,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """``case.closed``: the agency's case for the survivor ended, with how."""
        return self._send(CaseClosed, survivor_id, occurred_at, event_id, outcome=outcome)

    def share_case(
        self,
        survivor_id: UUID | str,
        *,
        with_agency: str,
        consent_id: UUID | str,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """``case.shared``: let ``with_agency`` act on this agency's survivor.

        Bound to the consent grant ``consent_id``, which must be active: the
        sharing ends with it (withdrawn whole or expired), with
        :meth:`unshare_case`, or when the case is closed.
        """
        return self._send(
            CaseShared,
            survivor_id,
            occurred_at,
            event_id,
            shared_with=with_agency,
            consent_id=consent_id,
        )

    def unshare_case(
        self,
        survivor_id: UUID | str,
        *,
        with_agency: str,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """``case.unshared``: end a sharing (the owner's, or this agency's own to step back)."""
        return self._send(CaseUnshared, survivor_id, occurred_at, event_id, shared_with=with_agency)

    # ------------------------------------------------------------------ events built elsewhere

    def publish(self, event: Event, *, event_id: str | None = None) -> str:
        """Publish an agency event built by the caller (see :func:`build_event`)."""
        item = self.outgoing(event, event_id=event_id)
        return self.transport.publish(item.event, event_id=item.event_id, source=item.source)

    async def publish_async(self, event: Event, *, event_id: str | None = None) -> str:
        """:meth:`publish` for asyncio callers; the transport's blocking work runs in a thread."""
        item = self.outgoing(event, event_id=event_id)
        return await self.transport.publish_async(
            item.event, event_id=item.event_id, source=item.source
        )

    def publish_many(
        self, events: Sequence[Event], *, event_ids: Sequence[str] | None = None
    ) -> list[str]:
        """Publish several agency events in one go; a survivor's events keep their order.

        ``event_ids``, when given, pairs with ``events`` one to one (for a
        retried batch). All events are checked before any is sent.
        """
        if event_ids is not None and len(event_ids) != len(events):
            raise SdkValidationError("event_ids must have one id per event")
        ids: Sequence[str | None] = event_ids if event_ids is not None else [None] * len(events)
        items = [
            self.outgoing(event, event_id=event_id)
            for event, event_id in zip(events, ids, strict=True)
        ]
        return self.transport.publish_many(items)

    def outgoing(self, event: Event, *, event_id: str | None = None) -> Outgoing:
        """The event with this agency's source and its id, after the agency-side checks.

        Only agency event types are accepted, and an event naming an agency
        must name this one: an agency publishes its own facts only.
        """
        if event.event_type not in AGENCY_EVENTS:
            raise SdkValidationError(
                f"{event.event_type} is not an agency event "
                f"(agency events: {', '.join(sorted(AGENCY_EVENTS))})"
            )
        named = getattr(event, "agency_id", None)
        if named is not None and named != self.agency_id:
            raise SdkValidationError(
                f"the {event.event_type} names another agency than this client's",
                ({"loc": "agency_id", "type": "agency_mismatch", "msg": "not this agency"},),
            )
        ce_id = check_event_id(event_id) if event_id is not None else str(uuid.uuid4())
        return Outgoing(event=event, event_id=ce_id, source=self.source)

    # ------------------------------------------------------------------ plumbing

    def _send(
        self,
        model: type[Event],
        survivor_id: UUID | str,
        occurred_at: datetime | None,
        event_id: str | None,
        **fields: Any,
    ) -> str:
        """Build ``model``, naming this agency where the model has an agency, and publish it.

        ``occurred_at`` is the caller's, else (for an id the caller passes
        again) the time of its first use in this process, else now.
        """
        ce_id = check_event_id(event_id) if event_id is not None else str(uuid.uuid4())
        fields["survivor_id"] = survivor_id
        fields["occurred_at"] = self._times.resolve(ce_id, occurred_at, self._clock)
        if "agency_id" in model.model_fields:
            fields["agency_id"] = self.agency_id
        values: Mapping[str, Any] = {k: v for k, v in fields.items() if v is not None}
        return self.publish(build_event(model, **values), event_id=ce_id)

    def _sealed(
        self,
        value: Sealed | bytes | str | None,
        survivor_id: UUID | str,
        model: type[Event],
        field: str,
    ) -> Sealed | None:
        """``value`` sealed for the platform (as given, when sealed already)."""
        if value is None or isinstance(value, Sealed):
            return value
        if self.keys is None:
            raise SdkValidationError(
                f"{field} in clear needs the key service to seal it: use "
                "AgencyClient.over_http, or over_kafka(..., key_service=(url, api_key))"
            )
        try:
            survivor = survivor_id if isinstance(survivor_id, UUID) else UUID(survivor_id)
        except ValueError:
            raise SdkValidationError("survivor_id must be a UUID") from None
        plaintext = value.encode() if isinstance(value, str) else value
        return self.keys.seal(survivor, model.event_type, field, plaintext)

    def close(self) -> None:
        """Flush and close the transport; forget the data keys."""
        self.transport.close()
        if self.keys is not None:
            self.keys.close()


def _personal_plaintext(
    value: PersonalData | Mapping[str, str] | Sealed | None,
) -> Sealed | bytes | None:
    """What to seal for ``personal_data``: the fields' canonical JSON (checked here, not later)."""
    if value is None or isinstance(value, Sealed):
        return value
    if not isinstance(value, PersonalData):
        try:
            value = PersonalData.of(value)
        except PersonalDataError as exc:
            raise SdkValidationError(f"personal_data: {exc}") from None
    return value.to_bytes()
