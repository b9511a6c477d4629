"""The provider's side of disclosure: fetch what it needs for an offer, open it with its own key.

An offer carries no personal data. The provider asks the intake for the
referral's disclosure (``POST /v1/survivors/{id}/referrals/{rid}/disclosure``)
with the public half of its :class:`~streams.provider_sealing.ProviderKey`;
the answer is sealed to that key, so only this process opens it. What comes
is what the referral's category may know (PRIVACY.md) and the referral's
notes, and only while the offer and the survivor's consent stand.

The opened :class:`Disclosure` is personal data: keep it no longer than the
service needs, never log it, and erase it when a ``referral.cancelled``
with reason ``ERASURE`` arrives.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from uuid import UUID

from connectors.exceptions import SdkRejectedError
from connectors.sdk.http_transport import HttpTransport
from connectors.sdk.offers import OfferRef
from streams.provider_sealing import SUITE_NAME, DisclosureContext, ProviderKey
from streams.sealing import SealingError

__all__ = ["Disclosure", "DisclosureClient"]


@dataclass(frozen=True)
class Disclosure:
    """What one referral's provider may know; ``repr`` shows field names, never values."""

    referral_id: UUID
    category: str
    personal_data: dict[str, str] = field(repr=False)
    """Personal fields by name (``name``, ``contact``...): the category's allowlist only."""
    notes: str | None = field(repr=False)
    """The requesting agency's notes for this referral, if it wrote any."""

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(sorted(self.personal_data))


class DisclosureClient:
    """Fetches and opens disclosures for one provider (thread-safe: httpx's client is)."""

    def __init__(
        self,
        transport: HttpTransport,
        provider_id: UUID,
        *,
        key: ProviderKey | None = None,
        owns_transport: bool = False,
    ) -> None:
        """``key`` defaults to a fresh key pair held in memory for the life of this client."""
        self._transport = transport
        self._owns_transport = owns_transport
        self.provider_id = provider_id
        self.key = key or ProviderKey.generate()

    def fetch(self, offer: OfferRef, *, wait_s: float = 10.0) -> Disclosure:
        """The disclosure for ``offer``, opened.

        Right after an offer arrives the intake's copy of the case may not show
        it yet: a 404 is asked again for up to ``wait_s`` seconds. A refusal
        (the offer no longer stands, consent withdrawn, survivor erased) is an
        :class:`SdkRejectedError` whose ``status`` says which.
        """
        deadline = time.monotonic() + wait_s
        while True:
            try:
                answer = self._transport.disclosure(
                    offer.survivor_id, offer.referral_id, self.key.public_b64()
                )
                break
            except SdkRejectedError as exc:
                if exc.status != 404 or time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
        return self._open(offer, answer)

    def _open(self, offer: OfferRef, answer: dict[str, object]) -> Disclosure:
        if answer.get("suite") != SUITE_NAME:
            raise SdkRejectedError(f"the disclosure is sealed with {answer.get('suite')!r}")
        context = DisclosureContext(offer.survivor_id, offer.referral_id, self.provider_id)
        try:
            sealed = base64.b64decode(str(answer["sealed"]), validate=True)
            document = json.loads(self.key.open(sealed, context))
            personal = {str(k): str(v) for k, v in dict(document["personal_data"]).items()}
            notes = document["notes"]
        except (KeyError, TypeError, ValueError, binascii.Error, SealingError) as exc:
            raise SdkRejectedError(
                f"the disclosure does not open for this provider ({type(exc).__name__})"
            ) from None
        return Disclosure(
            referral_id=offer.referral_id,
            category=str(answer.get("category")),
            personal_data=personal,
            notes=None if notes is None else str(notes),
        )

    def close(self) -> None:
        if self._owns_transport:
            self._transport.close()
