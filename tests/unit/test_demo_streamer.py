"""The demo's scenario streamer with recording agency clients: order, pace, resilience, stop."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any, cast

from connectors.demo.plan import AGENCIES, ARCHETYPES, survivor
from connectors.demo.streamer import Streamer
from connectors.exceptions import SdkRetriesExhaustedError
from connectors.sdk import AgencyClient


class Recording:
    """An agency client that records each call (method, survivor, keyword arguments)."""

    def __init__(self, calls: list[tuple[str, str, dict[str, Any]]], fail_first: bool = False):
        self.calls = calls
        self.fail_first = fail_first

    def _record(self, method: str, survivor_id: object, **fields: Any) -> str:
        if self.fail_first:
            self.fail_first = False
            raise SdkRetriesExhaustedError("the intake did not answer", attempts=4, event_ids=())
        self.calls.append((method, str(survivor_id), fields))
        return str(uuid.uuid4())

    def identify_survivor(self, survivor_id: object, **fields: Any) -> str:
        return self._record("identify", survivor_id, **fields)

    def grant_consent(self, survivor_id: object, **fields: Any) -> str:
        return self._record("consent", survivor_id, **fields)

    def assess_risk(self, survivor_id: object, **fields: Any) -> str:
        return self._record("risk", survivor_id, **fields)

    def request_referral(self, survivor_id: object, **fields: Any) -> str:
        return self._record("referral", survivor_id, **fields)

    def close(self) -> None:
        self.calls.append(("close", "", {}))


def _clients(
    calls: list[tuple[str, str, dict[str, Any]]], failing: str | None = None
) -> Mapping[str, AgencyClient]:
    return {
        agency: cast("AgencyClient", Recording(calls, fail_first=agency == failing))
        for agency in AGENCIES.values()
    }


def test_a_survivor_is_identified_consents_is_assessed_then_referred_by_its_agency() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    run = uuid.uuid4()
    planned = survivor(run, 3)
    Streamer(_clients(calls), run=run).send(planned)
    case = planned.archetype
    methods = [method for method, _, _ in calls]
    assert methods == ["identify", "consent", "risk"] + ["referral"] * len(case.referrals)
    assert {sid for _, sid, _ in calls} == {str(planned.survivor_id)}
    assert calls[0][2]["jurisdiction"] == case.jurisdiction
    assert calls[0][2]["personal_data"] == dict(planned.personal_data)  # sealed by the SDK
    assert calls[1][2]["categories"] == case.consent_categories
    referrals = [fields for method, _, fields in calls if method == "referral"]
    assert [r["referral_id"] for r in referrals] == list(planned.referral_ids)
    assert [r["category"] for r in referrals] == [r.category for r in case.referrals]


def test_it_keeps_its_pace_goes_on_after_a_failure_and_stops_when_told() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    first_agency = ARCHETYPES[0].agency_id
    streamer = Streamer(_clients(calls, failing=first_agency), interval_s=0.05)
    runner = threading.Thread(target=streamer.run_until_stopped)
    begun = time.monotonic()
    runner.start()
    while streamer.sent < 4 and time.monotonic() - begun < 10:
        time.sleep(0.01)
    streamer.stop.set()
    runner.join(5)
    assert not runner.is_alive()
    took = time.monotonic() - begun
    assert streamer.sent >= 4
    assert took >= 4 * 0.05  # one survivor per interval, survivor 0 failed and was skipped
    identified = [sid for method, sid, _ in calls if method == "identify"]
    assert str(survivor(streamer.run, 0).survivor_id) not in identified
    assert identified[0] == str(survivor(streamer.run, 1).survivor_id)
    streamer.close()
    assert [m for m, _, _ in calls].count("close") == len(AGENCIES)
