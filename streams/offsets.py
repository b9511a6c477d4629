"""The one offset tracker: which offset each partition may commit, when records finish out of order.

The webhook connector serves providers concurrently and the provider SDK's
caller acknowledges out of order. Plain bookkeeping with no Kafka client, so
it is tested without a broker; :class:`streams.consumer_loop.ConsumerLoop`
keeps it in step with the group's rebalances.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["OffsetTracker", "Partition"]


class Partition(NamedTuple):
    """A topic partition as a hashable key."""

    topic: str
    partition: int


@dataclass
class _PartitionState:
    generation: int
    pending: dict[int, None] = field(default_factory=dict)
    """Offsets read and not finished, ascending (insertion order)."""
    next_offset: int | None = None
    """Highest offset read + 1."""
    committed: int | None = None


class OffsetTracker:
    """Which offset each partition may commit: the lowest one not finished yet.

    Committing past an unfinished record would lose it in a crash. When none
    is pending, the position is the highest offset read + 1 (offsets may have
    gaps: transaction markers, compaction). Each assignment of a partition
    gets a new generation, so a record of an earlier assignment finishing
    late cannot move the new owner's position.
    """

    def __init__(self) -> None:
        self._partitions: dict[Partition, _PartitionState] = {}
        self._generations = 0

    def _start(self, partition: Partition) -> _PartitionState:
        self._generations += 1
        state = self._partitions[partition] = _PartitionState(generation=self._generations)
        return state

    def assign(self, partition: Partition) -> int:
        """Start owning ``partition`` afresh; its generation."""
        return self._start(partition).generation

    def revoke(self, partition: Partition) -> None:
        """Stop owning ``partition``: its unfinished records are the next owner's."""
        self._partitions.pop(partition, None)

    def owns(self, partition: Partition, generation: int) -> bool:
        """Whether a record read in ``generation`` still belongs to this consumer."""
        state = self._partitions.get(partition)
        return state is not None and state.generation == generation

    def track(self, partition: Partition, offset: int) -> int:
        """Note a record as read and unfinished; the generation to finish it with.

        An offset at or below one already read means the consumer went back
        (an offset reset): the partition starts over in a new generation.
        """
        state = self._partitions.get(partition)
        if state is None or (state.next_offset is not None and offset < state.next_offset):
            state = self._start(partition)
        state.pending[offset] = None
        state.next_offset = offset + 1
        return state.generation

    def skip(self, partition: Partition, offset: int) -> None:
        """Note a record as read and finished at once (not ours, a copy, undecodable)."""
        self.finish(partition, offset, self.track(partition, offset))

    def finish(self, partition: Partition, offset: int, generation: int) -> bool:
        """Note a record as finished; False when it was not pending (twice, or revoked since)."""
        if not self.owns(partition, generation):
            return False
        pending = self._partitions[partition].pending
        if offset not in pending:
            return False
        del pending[offset]
        return True

    def position(self, partition: Partition) -> int | None:
        """The offset to commit for ``partition`` (Kafka's next-to-read), or None if none read."""
        state = self._partitions.get(partition)
        if state is None:
            return None
        if state.pending:
            return next(iter(state.pending))
        return state.next_offset

    def take_ready(self, only: Iterable[Partition] | None = None) -> list[tuple[Partition, int]]:
        """Positions that moved since the last commit (of ``only``, if given), marked committed."""
        wanted = None if only is None else set(only)
        ready = []
        for partition, state in self._partitions.items():
            if wanted is not None and partition not in wanted:
                continue
            position = self.position(partition)
            if position is not None and position != state.committed:
                state.committed = position
                ready.append((partition, position))
        return ready

    def commit_failed(self, partition: Partition) -> None:
        """A commit did not go through: offer the position again next time."""
        state = self._partitions.get(partition)
        if state is not None:
            state.committed = None

    @property
    def pending(self) -> int:
        """Records read and not finished, over every partition (for back-pressure)."""
        return sum(len(state.pending) for state in self._partitions.values())

    def outstanding(self) -> dict[Partition, list[int]]:
        """The offsets read and not finished, per partition, oldest first (a copy)."""
        return {p: list(state.pending) for p, state in self._partitions.items() if state.pending}

    def rewind(self, partition: Partition) -> int | None:
        """Give the partition's unfinished records back: the offset to read again from, if any.

        Records after the oldest unfinished one are read again too (they
        were finished, but a consumer can only go back to one offset).
        """
        state = self._partitions.get(partition)
        if state is None or not state.pending:
            return None
        oldest = next(iter(state.pending))
        state.pending.clear()
        state.next_offset = oldest
        return oldest
