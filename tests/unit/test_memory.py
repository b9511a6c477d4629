"""The one bounded memory: at most ``capacity`` keys, the least recently remembered goes first."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.memory import BoundedMemory


def test_remembering_refreshes_and_the_stalest_is_forgotten() -> None:
    memory: BoundedMemory[str, int] = BoundedMemory(2)
    memory.remember("a", 1)
    memory.remember("b", 2)
    memory.remember("a", 3)  # refreshes a
    memory.remember("c", 4)  # forgets b
    assert "b" not in memory and len(memory) == 2
    assert memory.get("a") == 3 and memory.get("c") == 4 and memory.get("b") is None
    memory.forget("a")
    memory.forget("a")  # twice: nothing
    assert "a" not in memory and len(memory) == 1


def test_a_memory_holds_at_least_one_key() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoundedMemory(0)


@given(st.integers(1, 8), st.lists(st.integers(0, 20), max_size=60))
def test_it_holds_exactly_the_most_recent_distinct_keys(capacity: int, keys: list[int]) -> None:
    memory: BoundedMemory[int, None] = BoundedMemory(capacity)
    for key in keys:
        memory.remember(key, None)
    recent: list[int] = []
    for key in reversed(keys):
        if key not in recent:
            recent.append(key)
    assert {k for k in range(21) if k in memory} == set(recent[:capacity])
