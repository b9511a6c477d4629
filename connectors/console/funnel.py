"""The referral funnel, counted from the compacted ``case-status.v1`` read model.

Why this source: ``case-status.v1`` is the read model the router keeps for
exactly this (one record per survivor, the latest wins, a tombstone on
erasure), it carries ids, statuses and codes only, and replaying it gives
the same counts on every start. Its limit: it holds each referral's
*current* status, not its history, so the furthest stage a referral reached
is read from where it stands now (:func:`stage_reached`). A referral
cancelled after acceptance counts as offered only (the record cannot tell
an acceptance that was later cancelled), and a failed one as accepted.

The console keeps, per survivor, only what the counts need: each referral's
category, its stage and the survivor's jurisdiction. Per-survivor statuses
are never served from here: a lookup goes through the intake's audited
status route with the operator's own key.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from enum import IntEnum
from typing import Any
from uuid import UUID

from connectors.intake.status import status_of
from processors.lifecycle import ReferralStatus
from processors.status import ReferralView, StatusRecord
from streams.followed import FollowedCopy
from streams.replay import ReplayReader
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["STAGES", "Stage", "StatusBoard", "funnel_counts", "stage_reached"]


class Stage(IntEnum):
    """The funnel's stages, in order."""

    REQUESTED = 0
    OFFERED = 1
    ACCEPTED = 2
    STARTED = 3
    COMPLETED = 4


STAGES = tuple(stage.name.lower() for stage in Stage)

_AT_LEAST = {
    ReferralStatus.OFFERED: Stage.OFFERED,
    ReferralStatus.DECLINED: Stage.OFFERED,
    ReferralStatus.ACCEPTED: Stage.ACCEPTED,
    ReferralStatus.FAILED: Stage.ACCEPTED,  # fails only once accepted or started
    ReferralStatus.IN_PROGRESS: Stage.STARTED,
    ReferralStatus.COMPLETED: Stage.COMPLETED,
}

UNKNOWN_JURISDICTION = "??"
"""A survivor not identified yet (a referral can arrive first) has no jurisdiction."""


def stage_reached(referral: ReferralView) -> Stage:
    """The furthest stage a referral's current status shows it reached.

    A referral with an attempt was offered at least once, whatever happened
    after (declined and re-requested, cancelled, or no provider left).
    """
    stage = _AT_LEAST.get(referral.status, Stage.REQUESTED)
    if stage is Stage.REQUESTED and referral.attempts > 0:
        return Stage.OFFERED
    return stage


Row = tuple[str, str, Stage]
"""(category, jurisdiction, stage reached) of one referral."""


def rows_of(record: StatusRecord) -> tuple[Row, ...]:
    """What the funnel keeps of one survivor's record."""
    jurisdiction = record.jurisdiction or UNKNOWN_JURISDICTION
    return tuple((r.category.value, jurisdiction, stage_reached(r)) for r in record.referrals)


def funnel_counts(rows: Any) -> list[dict[str, Any]]:
    """Per category and jurisdiction, how many referrals reached each stage (cumulative)."""
    reached: Counter[tuple[str, str, Stage]] = Counter(rows)
    groups = sorted({(category, jurisdiction) for category, jurisdiction, _ in reached})
    out = []
    for category, jurisdiction in groups:
        counts = {
            name: sum(
                n
                for (c, j, s), n in reached.items()
                if (c, j) == (category, jurisdiction) and s >= stage
            )
            for name, stage in zip(STAGES, Stage, strict=True)
        }
        out.append({"category": category, "jurisdiction": jurisdiction, **counts})
    return out


class StatusBoard(FollowedCopy[dict[UUID, tuple[Row, ...]]]):
    """Each survivor's funnel rows, from ``case-status.v1`` (the latest record per key)."""

    def __init__(
        self, kafka: KafkaSettings, *, reader: Callable[..., ReplayReader] = ReplayReader
    ) -> None:
        super().__init__(
            kafka,
            Topics.of(kafka).case_status,
            name="console-status-board",
            empty=dict,
            apply=self._apply,
            reader=reader,
        )

    def counts(self) -> list[dict[str, Any]]:
        """The funnel of every survivor's referrals now."""
        return funnel_counts(row for rows in self.served.values() for row in rows)

    @property
    def survivors(self) -> int:
        """Survivors with a status record."""
        return len(self.served)

    def _apply(self, copy: dict[UUID, tuple[Row, ...]], record: Any) -> None:
        """As the intake's status store reads it: a bad record removes what was known of its key."""
        read = status_of(record, self.skip)
        if read is None:
            return
        survivor, status = read
        if status is None:
            copy.pop(survivor, None)
        else:
            copy[survivor] = rows_of(status)
