"""Sealing at the edge: the agency SDK seals personal data before it leaves the caller.

:class:`KeyClient` gets a survivor's data key from the intake's key
service (``POST /v1/survivors/{id}/data-key``, the platform's
``GenerateDataKey``: made on the first call, handed only to the agencies of
the case) and keeps it in memory only, for the life of the client, at most
``capacity`` survivors. :meth:`KeyClient.seal` seals a field for the
platform with :func:`streams.sealing.seal`, bound to the survivor, the event
type and the field, so the intake (or the inbound relay) can check it and
the platform can seal it again for each provider.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from uuid import UUID

from connectors.exceptions import SdkRejectedError
from connectors.sdk.http_transport import HttpTransport
from schemas.types import Sealed
from streams.sealing import DataKey, SealContext, seal

__all__ = ["PLATFORM", "KeyClient"]

PLATFORM = "platform"
"""The recipient of what agencies seal (the intake checks values sealed for it)."""


class KeyClient:
    """Survivors' data keys from the key service, held in memory; thread-safe."""

    def __init__(
        self, transport: HttpTransport, *, capacity: int = 1000, owns_transport: bool = False
    ) -> None:
        """``owns_transport``: :meth:`close` closes it (it is not also the client's publisher)."""
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._transport = transport
        self._owns_transport = owns_transport
        self._capacity = capacity
        self._keys: OrderedDict[UUID, DataKey] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, survivor_id: UUID) -> DataKey:
        """The survivor's data key (fetched once, then from memory)."""
        with self._lock:
            if survivor_id in self._keys:
                self._keys.move_to_end(survivor_id)
                return self._keys[survivor_id]
        answer = self._transport.data_key(survivor_id)
        try:
            key = DataKey(str(answer["key_id"]), survivor_id, base64.b64decode(answer["key"]))
        except (KeyError, ValueError) as exc:
            raise SdkRejectedError(
                "the key service answered without a usable key", event_ids=()
            ) from exc
        with self._lock:
            self._keys[survivor_id] = key
            while len(self._keys) > self._capacity:
                self._keys.popitem(last=False)
        return key

    def seal(self, survivor_id: UUID, event_type: str, field: str, plaintext: bytes) -> Sealed:
        """``plaintext`` sealed for the platform as ``field`` of a ``event_type`` event."""
        context = SealContext(survivor_id, event_type, field, PLATFORM)
        return seal(self.key(survivor_id), plaintext, context)

    def forget(self, survivor_id: UUID) -> None:
        """Drop a survivor's key from memory (after an erasure, say)."""
        with self._lock:
            self._keys.pop(survivor_id, None)

    def close(self) -> None:
        """Forget every key; close the transport if this client owns it."""
        with self._lock:
            self._keys.clear()
        if self._owns_transport:
            self._transport.close()
