"""The router binding erases a closed case when its retention ends, as an erasure request does.

Driven by ticks over the in-memory tables and topics of ``test_binding``:
the step of a due retention deadline carries ``erased_at``, so the binding
tombstones the survivor's status and data key, and the providers' topics get
the ``ERASURE`` notices, before the case table is written.
"""

from __future__ import annotations

import json
from datetime import timedelta

from processors.deadlines import DeadlineKind, parse_key, partition_prefix
from processors.lifecycle import ReferralStatus
from schemas.models import ReferralCancelled
from schemas.types import CancelReason
from streams.ticks import encode_tick
from tests.unit.domain_builders import T0, closed, declined
from tests.unit.test_binding import (
    FIRST,
    HOUSING_TOPIC,
    PARTITION,
    RESPONSES,
    RID,
    SECOND,
    SID,
    SLA,
    Tick,
    World,
    offer,
    world,
)

CLOSED_AT = T0 + timedelta(hours=1)
DUE = CLOSED_AT + SLA.retention.after_closure


async def _closed() -> World:
    """An offer declined by one provider, re-offered to the other, then the case closed."""
    w = world(FIRST, SECOND)
    await offer(w)
    first = w.case().referrals[RID]
    assert first.provider_id is not None
    await w.feed(declined(SID, RID, first.provider_id, first.attempt), topic=RESPONSES)
    await w.feed(closed(SID, at=CLOSED_AT))
    assert set(w.case().referrals[RID].tried) == {FIRST, SECOND}
    w.forget_sent()
    return w


async def test_closure_leaves_one_deadline_the_retention_end() -> None:
    w = await _closed()
    (key,) = w.deadline_keys()
    parts = parse_key(key, partition_prefix(PARTITION))
    assert (parts.kind, parts.referral_id) == (DeadlineKind.RETENTION, None)
    assert parts.due_millis == int(DUE.timestamp() * 1000)


async def test_a_tick_before_the_end_writes_nothing() -> None:
    w = await _closed()
    await w.binding.tick(Tick(encode_tick(DUE - timedelta(seconds=1)), PARTITION))
    assert w.journal.steps == []
    assert w.case().erased_at is None


async def test_the_tick_at_the_end_shreds_the_key_tombstones_the_status_and_tells_both() -> None:
    w = await _closed()
    await w.binding.tick(Tick(encode_tick(DUE), PARTITION))

    [status], [key] = w.sent("status"), w.sent("keys")
    assert (status.key, status.value) == (str(SID).encode(), None)
    assert (key.key, key.value) == (str(SID).encode(), None)
    notices = w.events(HOUSING_TOPIC)
    assert all(isinstance(n, ReferralCancelled) for n in notices)
    told = sorted(str(n.provider_id) for n in notices)  # type: ignore[attr-defined]
    assert told == sorted([str(FIRST), str(SECOND)])
    assert {n.reason for n in notices} == {CancelReason.ERASURE}  # type: ignore[attr-defined]
    audits = [json.loads(s.value or b"null") for s in w.sent("audit")]
    assert [(a["action"], a["reasons"]) for a in audits] == [("erased", ["retention.elapsed"])]
    case = w.case()
    assert case.erased_at == DUE and case.profile is None
    assert case.referrals[RID].status is ReferralStatus.CANCELLED  # as the closure left it
    assert w.deadline_keys() == []
    assert w.journal.writes_wait_for_acks()  # a crash before the acks replays the tick

    w.forget_sent()
    await w.binding.tick(Tick(encode_tick(DUE + timedelta(days=1)), PARTITION))
    assert w.journal.steps == []  # nothing left to erase, nobody told twice
