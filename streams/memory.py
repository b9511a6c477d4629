"""A bounded memory of recent keys, least recently used first out.

For consumers that recognise copies and SDKs that re-send the same event on
a retry; thread-safe because the SDKs may be called from several threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["BoundedMemory"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedMemory(Generic[K, V]):
    """At most ``capacity`` keys with a value each; remembering one more forgets the stalest."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is remembered (without refreshing it)."""
        return key in self._items

    def get(self, key: K) -> V | None:
        """The value remembered for ``key``, or None (without refreshing it)."""
        return self._items.get(key)

    def remember(self, key: K, value: V) -> None:
        """Remember ``key`` as the newest, with ``value``; forget the stalest beyond capacity."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def forget(self, key: K) -> None:
        """Forget ``key`` (nothing happens when it is not remembered)."""
        with self._lock:
            self._items.pop(key, None)
