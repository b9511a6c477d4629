"""The identity of an input event, for idempotency and for stable output ids.

Kept apart from :mod:`processors.core` so that every part of the core can
derive ids without importing the entry point.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID, uuid5

__all__ = ["EFFECT_ID_NAMESPACE", "EventMeta"]

EFFECT_ID_NAMESPACE = UUID("5d0c6a4e-1c55-4c36-9f0e-5afe9a55a9e1")
"""UUIDv5 namespace of the CloudEvents ids of events the core emits."""


class _Enveloped(Protocol):
    """What :class:`streams.cloudevents.Envelope` offers (kept structural: no Kafka import here)."""

    @property
    def id(self) -> str: ...

    @property
    def source(self) -> str: ...


@dataclass(frozen=True)
class EventMeta:
    """The CloudEvents identity of the input: ``source`` + ``id`` name one fact."""

    source: str
    id: str

    def __post_init__(self) -> None:
        """Empty attributes would make every event look like every other."""
        if not self.source or not self.id:
            raise ValueError("CloudEvents source and id must not be empty")

    @classmethod
    def of(cls, envelope: _Enveloped) -> EventMeta:
        """The metadata of a decoded record's envelope."""
        return cls(source=envelope.source, id=envelope.id)

    @property
    def key(self) -> str:
        """Fixed-size digest stored in the idempotency window (ids can be long)."""
        raw = f"{self.source}\x00{self.id}".encode()
        return hashlib.blake2b(raw, digest_size=16).hexdigest()

    def effect_id(self, index: int) -> str:
        """CloudEvents id of the ``index``-th event emitted for this input (stable on retry)."""
        return str(uuid5(EFFECT_ID_NAMESPACE, f"{self.source}\x00{self.id}\x00{index}"))
