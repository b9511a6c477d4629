"""The scenario streamer of the live demo: survivors identified, consenting, assessed, referred.

Every ``interval_s`` seconds one more survivor of the plan
(:func:`connectors.demo.plan.survivor`) is sent through the intake API, as
its country's demo agency, with that agency's own key, over HTTPS checked
against the local CA (:meth:`~connectors.sdk.AgencyClient.over_http`):
``survivor.identified`` with made-up personal data (sealed by the SDK
before it leaves this process), ``consent.granted`` for the categories it
needs, ``risk.assessed``, then each ``referral.requested`` (with a made-up
sealed note). Every event's ``occurred_at`` is now: the router's clock is
the events' time.

It keeps a steady pace (a survivor that took long to send shortens the
next wait, never adds a burst) and runs until SIGINT or SIGTERM, which end
it after the survivor in hand. One log line per survivor: its number, its
pseudonym, the agency, the case's name and the categories asked for;
never its data. A refusal or an intake that does not answer is logged and
the next survivor comes as planned: a demo that stops at the first hiccup
shows nothing.
"""

from __future__ import annotations

import signal
import ssl
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import yaml

from connectors.demo.plan import AGENCIES, PlannedSurvivor, survivor
from connectors.exceptions import ConnectorsError, SdkError
from connectors.platform.demo import DemoKey
from connectors.sdk import AgencyClient, RetryPolicy
from streams.logs import get_logger

__all__ = ["Streamer", "StreamerError", "agency_clients"]

log = get_logger(__name__)

RETRY = RetryPolicy(max_attempts=4, max_elapsed_s=8.0)
"""Short retries: a stop must not wait for a minute of them (the supervisor kills after 10 s)."""


class StreamerError(ConnectorsError):
    """The streamer cannot start: no demo agency keys."""


def agency_clients(
    credentials_file: Path, intake_url: str, verify: ssl.SSLContext | bool
) -> dict[str, AgencyClient]:
    """An HTTP agency client per demo agency of the plan, each with its own key."""
    try:
        document = yaml.safe_load(credentials_file.read_text(encoding="utf-8"))
        keys = [DemoKey.model_validate(entry) for entry in document["keys"]]
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError) as exc:
        raise StreamerError(
            f"cannot read the demo keys in {credentials_file} ({type(exc).__name__})"
        ) from None
    by_agency = {key.agency_id: key for key in keys if key.agency_id}
    missing = sorted(set(AGENCIES.values()) - set(by_agency))
    if missing:
        raise StreamerError(
            f"no demo key for {', '.join(missing)} in {credentials_file}: run `safepassage run`"
        )
    return {
        agency_id: AgencyClient.over_http(
            agency_id, intake_url, by_agency[agency_id].key, retry=RETRY, verify=verify
        )
        for agency_id in AGENCIES.values()
    }


@dataclass
class Streamer:
    """Sends the plan's survivors one after another, at a steady pace, until stopped."""

    clients: Mapping[str, AgencyClient]
    run: uuid.UUID = field(default_factory=uuid.uuid4)
    """This streamer's run: survivor ids derive from it (a restart gets new survivors)."""
    interval_s: float = 4.0
    stop: threading.Event = field(default_factory=threading.Event)
    sent: int = 0

    def send(self, planned: PlannedSurvivor) -> None:
        """One survivor's events, in the order the router needs them (blocking)."""
        case = planned.archetype
        agency = self.clients[case.agency_id]
        sid = planned.survivor_id
        agency.identify_survivor(
            sid,
            jurisdiction=case.jurisdiction,
            age_group=case.age_group,
            languages=case.languages,
            gender=case.gender,
            personal_data=dict(planned.personal_data),
        )
        agency.grant_consent(
            sid,
            consent_id=planned.consent_id,
            categories=case.consent_categories,
            cross_border_allowed=case.cross_border,
            jurisdictions=case.consent_jurisdictions,
        )
        agency.assess_risk(sid, level=case.risk, immediate_needs=case.needs)
        for referral_id, referral in planned.referrals:
            agency.request_referral(
                sid,
                referral_id=referral_id,
                category=referral.category,
                urgency=referral.urgency,
                jurisdiction=referral.jurisdiction,
                languages=referral.languages,
                gender_specific=referral.gender_specific,
                child_specialised=referral.child_specialised,
                accessibility=referral.accessibility,
                notes=f"Fictional demo note for survivor {planned.number} (not a real person).",
            )

    def run_until_stopped(self) -> None:
        """Survivor after survivor every ``interval_s`` until :attr:`stop` is set."""
        log.info("demo.streamer.started", run=str(self.run), interval_s=self.interval_s)
        due = time.monotonic()
        number = 0
        while not self.stop.is_set():
            planned = survivor(self.run, number)
            case = planned.archetype
            try:
                self.send(planned)
            except SdkError as exc:
                log.warning(
                    "demo.survivor.not_sent",
                    number=number,
                    survivor_id=str(planned.survivor_id),
                    case=case.name,
                    error=type(exc).__name__,
                    status=getattr(exc, "status", None),
                )
            else:
                self.sent += 1
                log.info(
                    "demo.survivor",
                    number=number,
                    survivor_id=str(planned.survivor_id),
                    agency=case.agency_id,
                    case=case.name,
                    referrals=[r.category.value for r in case.referrals],
                )
            number += 1
            due = max(due + self.interval_s, time.monotonic())
            self.stop.wait(due - time.monotonic())
        log.info("demo.streamer.stopped", sent=self.sent)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def run_streamer(streamer: Streamer) -> None:
    """Run until SIGINT or SIGTERM (each ends it after the survivor in hand)."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        streamer.stop.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        streamer.run_until_stopped()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        streamer.close()
