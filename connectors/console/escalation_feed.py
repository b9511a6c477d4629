"""The console's live escalation feed and its SLA-breach counts, from ``escalations.v1``.

One reader per console process (:class:`~streams.followed.FollowedCopy`: the
topic replayed without a consumer group, then followed), however many
browsers watch: each browser subscribes and gets what passes its filter
(:class:`connectors.escalations.EscalationFilter`, the same rule as
``safepassage escalations follow``). An escalation carries pseudonyms, codes
and times only, and the feed keeps only those fields. Escalation ids are
stable per (survivor, referral or clock, rung), so a record published again
after a worker's crash is recognised and neither shown nor counted twice.

A *breach* is a deadline missed (``DEADLINE_MISSED``, ``LEGAL_CLOCK``): one
per survivor, referral and missed deadline, however many rungs it climbed.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.escalations import EscalationFilter
from schemas.models import ReferralEscalated
from schemas.types import EscalationReason
from streams.codec import Codec
from streams.exceptions import StreamsError
from streams.followed import FollowedCopy
from streams.memory import BoundedMemory
from streams.replay import ReplayReader
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["BREACH_REASONS", "EscalationFeed", "EscalationTally", "Subscription", "summary"]

BREACH_REASONS = frozenset({EscalationReason.DEADLINE_MISSED, EscalationReason.LEGAL_CLOCK})
"""Escalations that mean an SLA or legal deadline was missed."""

NO_CATEGORY = "NONE"
"""The category of a breach that concerns no referral (a legal clock of the case)."""

SEEN_IDS = 200_000
"""Escalation ids remembered to drop re-published copies (and not push them twice)."""

QUEUE_BOUND = 1000
"""Escalations waiting for one browser; a browser this far behind is dropped (it reconnects)."""


def summary(envelope_id: str, event: ReferralEscalated) -> dict[str, Any]:
    """What the console shows of an escalation: ids, codes and times, nothing else."""
    return {
        "id": envelope_id,
        "occurred_at": event.occurred_at.isoformat(),
        "level": event.level,
        "reason": event.reason.value,
        "category": event.category.value if event.category is not None else None,
        "jurisdiction": event.jurisdiction,
        "survivor_id": str(event.survivor_id),
        "referral_id": str(event.referral_id) if event.referral_id is not None else None,
        "provider_id": str(event.provider_id) if event.provider_id is not None else None,
        "missed_deadline": (
            event.missed_deadline.isoformat() if event.missed_deadline is not None else None
        ),
    }


@dataclass
class EscalationTally:
    """One replay's content: the latest escalations and the breach counts."""

    recent_bound: int
    recent: deque[tuple[ReferralEscalated, dict[str, Any]]] = field(init=False)
    ids: set[str] = field(default_factory=set)
    breaches: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(category, jurisdiction) to the number of deadlines missed."""
    _breach_keys: set[tuple[str, str, str]] = field(default_factory=set)
    total: int = 0

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.recent_bound)

    def add(self, envelope_id: str, event: ReferralEscalated) -> dict[str, Any] | None:
        """Take one escalation; its summary if it is new to this tally, else None."""
        if envelope_id in self.ids:
            return None
        self.ids.add(envelope_id)
        self.total += 1
        shown = summary(envelope_id, event)
        self.recent.append((event, shown))
        if event.reason in BREACH_REASONS:
            deadline = event.missed_deadline or event.occurred_at
            key = (str(event.survivor_id), str(event.referral_id), deadline.isoformat())
            if key not in self._breach_keys:
                self._breach_keys.add(key)
                category = event.category.value if event.category is not None else NO_CATEGORY
                self.breaches[(category, event.jurisdiction)] += 1
        return shown


@dataclass(eq=False)  # one per browser, told apart by identity (kept in a set)
class Subscription:
    """One browser's feed: what passes its filter, in order, bounded."""

    which: EscalationFilter
    queue: asyncio.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_BOUND)
    )


class EscalationFeed(FollowedCopy[EscalationTally]):
    """``escalations.v1`` in memory, pushed to subscribers as it arrives.

    What was already there when the console started is the history a
    browser gets on opening (:meth:`subscribe`); only escalations read after
    the first catch-up are pushed live, each once.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        recent: int,
        reader: Callable[..., ReplayReader] = ReplayReader,
    ) -> None:
        self._topic = Topics.of(kafka).escalations
        self._codec = Codec(kafka, source="/safepassage/console")
        self._pushed: BoundedMemory[str, None] = BoundedMemory(SEEN_IDS)
        self._subscribers: set[Subscription] = set()
        self.undecodable = 0
        super().__init__(
            kafka,
            self._topic,
            name="console-escalations",
            empty=lambda: EscalationTally(recent),
            apply=self._apply,
            reader=reader,
        )

    def subscribe(self, which: EscalationFilter) -> tuple[Subscription, list[dict[str, Any]]]:
        """A new subscription and the recent escalations it matches, oldest first.

        Both in one step of the event loop, so nothing falls between them.
        """
        subscription = Subscription(which)
        self._subscribers.add(subscription)
        history = [shown for event, shown in self.served.recent if which.matches(event)]
        return subscription, history

    def end_all(self) -> None:
        """End every browser's stream (the console is stopping); browsers reconnect."""
        for subscription in list(self._subscribers):
            self._end(subscription)

    def unsubscribe(self, subscription: Subscription) -> None:
        """The browser went away."""
        self._subscribers.discard(subscription)

    def recent(self, which: EscalationFilter) -> list[dict[str, Any]]:
        """The recent escalations that pass ``which``, oldest first."""
        return [shown for event, shown in self.served.recent if which.matches(event)]

    def breaches(self) -> list[dict[str, Any]]:
        """Deadlines missed per category and jurisdiction."""
        return [
            {"category": category, "jurisdiction": jurisdiction, "breaches": count}
            for (category, jurisdiction), count in sorted(self.served.breaches.items())
        ]

    def _apply(self, tally: EscalationTally, record: Any) -> None:
        try:
            decoded = self._codec.decode(
                record.value, record.headers, topic=record.topic, key=record.key
            )
        except StreamsError:
            self.undecodable += 1
            self.skip(record, "value")
            return
        event = decoded.event
        if not isinstance(event, ReferralEscalated):
            self.skip(record, "event-type")
            return
        shown = tally.add(decoded.envelope.id, event)
        if shown is None:
            return
        envelope_id = decoded.envelope.id
        live = self.ready and envelope_id not in self._pushed
        self._pushed.remember(envelope_id, None)
        if live:
            self._push(event, shown)

    def _push(self, event: ReferralEscalated, shown: dict[str, Any]) -> None:
        for subscription in list(self._subscribers):
            if not subscription.which.matches(event):
                continue
            try:
                subscription.queue.put_nowait(shown)
            except asyncio.QueueFull:  # too slow a browser: end its stream, it reconnects
                self._end(subscription)

    def _end(self, subscription: Subscription) -> None:
        """None at the end of the queue ends the stream (making room for it if need be)."""
        self._subscribers.discard(subscription)
        if subscription.queue.full():
            subscription.queue.get_nowait()
        subscription.queue.put_nowait(None)
