"""The provider directory with live capacity, for the console's directory view.

Live capacity is two topics: ``providers.v1`` (compacted: registrations,
updates and the providers' own ``provider.capacity`` reports) and
``capacity-ledger.v1`` (the places the router reserved and released per
referral). Both are replayed together, as every router worker does
(:class:`processors.router.DirectoryView`), into the pure
:class:`processors.directory.Directory`, so the console shows the free
places routing itself works with. Shown: provider ids, categories,
jurisdictions and counts; never a provider's name or address (a shelter's
whereabouts are protected too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from processors.directory import CapacityChange, Directory, apply_capacity, apply_directory
from processors.exceptions import ProcessorsError
from schemas.models import ProviderEvent
from streams.codec import Codec
from streams.exceptions import StreamsError
from streams.followed import FollowedCopy
from streams.replay import ReplayReader
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["DirectoryCopy", "LiveDirectory", "directory_rows"]


@dataclass
class DirectoryCopy:
    """One replay's directory, and ledger changes whose provider it does not know yet."""

    directory: Directory = field(default_factory=Directory)
    pending: list[CapacityChange] = field(default_factory=list)

    def change(self, change: CapacityChange) -> None:
        """Apply a ledger change, or keep it until its provider's entry arrives (order holds)."""
        entry = self.directory.get(change.provider_id)
        if entry is None or change.category not in entry.places:
            self.pending.append(change)
            return
        self.directory = apply_capacity(self.directory, [change])

    def provider_event(self, event: ProviderEvent) -> None:
        """Apply a directory event, then the changes that waited for it."""
        self.directory = apply_directory(self.directory, event)
        waiting, self.pending = self.pending, []
        for change in waiting:
            self.change(change)


def directory_rows(directory: Directory) -> list[dict[str, Any]]:
    """One row per provider and category: ids, codes and counts."""
    rows = []
    for provider_id, entry in sorted(directory.providers.items(), key=lambda kv: str(kv[0])):
        profile = entry.profile
        for category, places in sorted(entry.places.items()):
            rows.append(
                {
                    "provider_id": str(provider_id),
                    "registered": profile is not None,
                    "category": category.value,
                    "jurisdictions": list(profile.jurisdictions) if profile is not None else [],
                    "total": places.total,
                    "reserved": places.reserved,
                    "held": places.held,
                    "available": entry.available(category),
                    "updated_at": (
                        entry.updated_at.isoformat() if entry.updated_at is not None else None
                    ),
                }
            )
    return rows


class LiveDirectory(FollowedCopy[DirectoryCopy]):
    """``providers.v1`` and ``capacity-ledger.v1`` in memory, served once caught up."""

    def __init__(
        self, kafka: KafkaSettings, *, reader: Callable[..., ReplayReader] = ReplayReader
    ) -> None:
        topics = Topics.of(kafka)
        self._ledger = topics.capacity_ledger
        self._codec = Codec(kafka, source="/safepassage/console")
        both = (topics.providers, topics.capacity_ledger)

        def both_topics(settings: KafkaSettings, _: Sequence[str], **options: Any) -> ReplayReader:
            return reader(settings, both, **options)

        super().__init__(
            kafka,
            topics.providers,
            name="console-directory",
            empty=DirectoryCopy,
            apply=self._apply,
            reader=both_topics,
        )

    def rows(self) -> list[dict[str, Any]]:
        """The directory view now."""
        return directory_rows(self.served.directory)

    def _apply(self, copy: DirectoryCopy, record: Any) -> None:
        try:
            if record.topic == self._ledger:
                copy.change(CapacityChange.model_validate_json(record.value))
                return
            decoded = self._codec.decode(
                record.value, record.headers, topic=record.topic, key=record.key
            )
            if not isinstance(decoded.event, ProviderEvent):
                self.skip(record, "event-type")
                return
            copy.provider_event(decoded.event)
        except (StreamsError, ProcessorsError, ValueError):
            self.skip(record, "value")
