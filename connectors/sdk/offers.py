"""What a provider receives and how it names it: offers, their references, copies recognised.

The values the provider SDK hands its caller, and the two rules that make
at-least-once delivery safe for a provider: a record already yielded is
recognised under every key a copy could carry (:func:`dedupe_keys`), and an
answer's CloudEvents id derives from the offer (:func:`answer_id`). Pure, so
these invariants are tested with hypothesis, apart from the consumer.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from uuid import UUID

from schemas.models import ReferralCancelled, ReferralOffered
from streams.memory import BoundedMemory

__all__ = [
    "ANSWER_ID_NAMESPACE",
    "DEFAULT_DEDUPE_CAPACITY",
    "Deduplicator",
    "Incoming",
    "OfferRef",
    "ProviderStats",
    "answer_id",
    "dedupe_keys",
]

ANSWER_ID_NAMESPACE = UUID("7e1d78b6-5121-4e54-9b9d-c6bc766a5f4f")
"""UUIDv5 namespace of provider answers' CloudEvents ids."""

DEFAULT_DEDUPE_CAPACITY = 50_000
"""Keys remembered for de-duplication (about three per item): some 16,000 recent items."""


@dataclass(frozen=True)
class OfferRef:
    """What names an offer for an answer: keep it to start, complete or fail later."""

    survivor_id: UUID
    referral_id: UUID
    attempt: int

    @classmethod
    def of(cls, offer: ReferralOffered) -> OfferRef:
        return cls(offer.survivor_id, offer.referral_id, offer.attempt)


@dataclass(frozen=True)
class Incoming:
    """One offer or cancellation for this provider, with where it came from."""

    event: ReferralOffered | ReferralCancelled
    event_id: str
    source: str
    topic: str
    partition: int
    offset: int

    @property
    def is_offer(self) -> bool:
        """Whether this is a ``referral.offered`` (else a ``referral.cancelled``)."""
        return isinstance(self.event, ReferralOffered)

    @property
    def ref(self) -> OfferRef | None:
        """The offer's reference; None for a cancellation."""
        return OfferRef.of(self.event) if isinstance(self.event, ReferralOffered) else None


@dataclass
class ProviderStats:
    """What :meth:`ProviderClient.offers` saw besides what it yielded."""

    yielded: int = 0
    duplicates: int = 0
    not_addressed: int = 0
    """Records for other providers sharing the partition."""
    undecodable: int = 0
    """Records that broke the contract; the router's own consumers dead-letter such records."""


def answer_id(provider_id: UUID, ref: OfferRef, event_type: str) -> str:
    """The CloudEvents id of one answer: the same for the same (provider, offer, answer)."""
    name = f"{provider_id}|{ref.referral_id}|{ref.attempt}|{event_type}"
    return str(uuid.uuid5(ANSWER_ID_NAMESPACE, name))


def dedupe_keys(
    event: ReferralOffered | ReferralCancelled, *, event_id: str, source: str
) -> tuple[Hashable, ...]:
    """Every key under which a copy of this record would be recognised.

    The CloudEvents identity (source and id) catches re-publications of the
    same record; the domain key catches a second record of the same fact
    under another id: an offer is one (referral, attempt), a cancellation
    one per referral.
    """
    domain: Hashable
    if isinstance(event, ReferralOffered):
        domain = ("offer", event.referral_id, event.attempt)
    else:
        domain = ("cancel", event.referral_id, event.event_type)
    return (("ce", source, event_id), domain)


class Deduplicator:
    """Keys already seen, in the one bounded memory (:class:`streams.memory.BoundedMemory`)."""

    def __init__(self, capacity: int = DEFAULT_DEDUPE_CAPACITY) -> None:
        self._seen: BoundedMemory[Hashable, None] = BoundedMemory(capacity)

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, keys: Iterable[Hashable]) -> bool:
        """Whether none of ``keys`` was seen; all of them are remembered (as most recent) after.

        A copy refreshes its keys, so a record that keeps being re-sent is
        never forgotten while it does.
        """
        keys = tuple(keys)
        seen = any(key in self._seen for key in keys)
        for key in keys:
            self._seen.remember(key, None)
        return not seen

    def forget(self, keys: Iterable[Hashable]) -> None:
        """Drop keys, so that the record they came from is new again (it is to be re-read)."""
        for key in keys:
            self._seen.forget(key)
