"""The operator's live view of ``safepassage.escalations.v1`` (``safepassage escalations follow``).

Escalations carry pseudonyms, codes and times only; nothing here can show
personal data. Records that do not decode are counted and skipped: the
topic's own consumers dead-letter them, an operator's terminal is not the place.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from schemas.models import ReferralEscalated
from schemas.types import ServiceCategory
from streams.codec import Codec
from streams.consumer_loop import ConsumerLoop
from streams.exceptions import DecodeError
from streams.memory import BoundedMemory
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["EscalationFilter", "follow"]


@dataclass(frozen=True)
class EscalationFilter:
    """Which escalations to show; empty sets mean all."""

    levels: frozenset[int] = frozenset()
    jurisdictions: frozenset[str] = frozenset()
    categories: frozenset[ServiceCategory] = frozenset()

    def matches(self, event: ReferralEscalated) -> bool:
        """Whether an escalation passes every non-empty criterion."""
        if self.levels and event.level not in self.levels:
            return False
        if self.jurisdictions and not any(
            event.jurisdiction == j or event.jurisdiction.startswith(f"{j}-")
            for j in self.jurisdictions
        ):
            return False
        return not self.categories or event.category in self.categories


SEEN_IDS = 100_000
"""How many recent escalation ids a follow session remembers to drop copies."""


@dataclass
class FollowStats:
    """What a follow session saw, for its closing line."""

    shown: int = 0
    filtered_out: int = 0
    undecodable: int = 0
    copies: int = 0
    """Records whose CloudEvents id was already shown (re-published after a worker crash)."""
    errors: list[str] = field(default_factory=list)


def follow(
    settings: KafkaSettings,
    which: EscalationFilter,
    *,
    from_beginning: bool = False,
    max_events: int | None = None,
    idle_timeout_s: float | None = None,
    stats: FollowStats | None = None,
) -> Iterator[ReferralEscalated]:
    """Yield matching escalations as they arrive, until a limit is reached (or forever).

    A private consumer group per session: following never moves another
    reader's offsets, and by default starts at the end of the topic.
    """
    stats = stats if stats is not None else FollowStats()
    topic = Topics.of(settings).escalations
    codec = Codec(settings, source="/safepassage/console")
    loop = ConsumerLoop(
        settings,
        f"{settings.client_id}-console-{uuid.uuid4().hex[:12]}",
        [topic],
        name="console.follow",
        overrides={"auto.offset.reset": "earliest" if from_beginning else "latest"},
        on_error=lambda error: stats.errors.append(str(error)),
        log_rebalances=False,  # the operator's terminal shows escalations only
    )
    seen: BoundedMemory[str, None] = BoundedMemory(SEEN_IDS)
    try:
        # The idle clock restarts on partition assignment (the loop's rule): joining
        # the group is not idleness, however long a busy broker took.
        if max_events is not None and max_events <= 0:
            return
        for message in loop.records(poll_s=0.5, idle_timeout_s=idle_timeout_s):
            try:
                decoded = codec.decode(
                    message.value(), message.headers(), topic=topic, key=message.key()
                )
            except DecodeError:
                stats.undecodable += 1
                continue
            event = decoded.event
            if decoded.envelope.id in seen:
                stats.copies += 1
                continue
            if not isinstance(event, ReferralEscalated) or not which.matches(event):
                stats.filtered_out += 1
                continue
            seen.remember(decoded.envelope.id, None)
            stats.shown += 1
            yield event
            if max_events is not None and stats.shown >= max_events:
                return
    finally:
        loop.close()
