"""Failure policy and the decode-handle-or-dead-letter loop, without a broker."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.exceptions import ConnectorsError, WebhookUndeliverableError
from infra.exceptions import InfraError
from processors.exceptions import LedgerError, ProcessorsError, SurvivorMismatchError
from schemas.exceptions import SafePassageError, SchemasError
from schemas.models import CaseClosed
from schemas.types import CaseOutcome
from streams.codec import Codec, Decoded
from streams.consuming import EXIT_CRASHED, process_records, stop_app_on_error
from streams.deadletter import Action, DeadLetter, default_policy, describe_error
from streams.exceptions import (
    EncodeError,
    KeyMismatch,
    ProvisioningError,
    RecordRejected,
    RegistryUnavailableError,
    StreamsError,
    UndecodableRecord,
    UnknownTopicError,
)
from streams.settings import KafkaSettings
from streams.ticks import TickError

SETTINGS = KafkaSettings()
INTAKE = "safepassage.intake.v1"


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass
class StreamEvent:
    message: Message


@dataclass
class ListStream:
    """Stands in for a Faust stream: yields events carrying messages."""

    messages: list[Message]

    async def events(self) -> Any:
        for message in self.messages:
            yield StreamEvent(message)


@dataclass
class Sink:
    letters: list[DeadLetter] = field(default_factory=list)

    async def publish(self, letter: DeadLetter) -> None:
        self.letters.append(letter)


def record(offset: int) -> Message:
    event = CaseClosed(
        survivor_id=uuid.UUID(int=offset + 1),
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        agency_id="agency-1",
        outcome=CaseOutcome.SUPPORT_COMPLETED,
    )
    encoded = Codec(SETTINGS, source="/test").encode(event, INTAKE)
    return Message(INTAKE, 0, offset, encoded.key, encoded.value, encoded.headers)


def test_policy_retries_transient_failures_and_dead_letters_the_records_fault() -> None:
    assert default_policy(RegistryUnavailableError("down")) is Action.RETRY
    for records_fault in (
        UndecodableRecord("garbage"),
        KeyMismatch("wrong key"),
        RecordRejected("referral.unknown: no such referral"),
        TickError("not a tick"),
    ):
        assert default_policy(records_fault) is Action.DEAD_LETTER, records_fault


@pytest.mark.parametrize(
    "ours",
    [
        ProcessorsError("bug"),
        SurvivorMismatchError("key and body disagree"),
        LedgerError("unknown provider"),
        EncodeError("referral.offered is not allowed on safepassage.escalations.v1"),
        UnknownTopicError("safepassage.nowhere.v1 is not in the catalog"),
        ProvisioningError("cannot describe topics"),
        ConnectorsError("connector bug"),
        SchemasError("contract defect"),
        InfraError("broker"),
        SafePassageError("any other"),
    ],
)
def test_policy_stops_on_an_error_of_ours_that_is_not_about_the_record(ours: Exception) -> None:
    assert default_policy(ours) is Action.STOP


def test_policy_dead_letters_a_foreign_exception_it_cannot_place() -> None:
    assert default_policy(KeyError("surprise")) is Action.DEAD_LETTER


def test_messages_of_every_safepassage_error_are_kept_and_foreign_ones_withheld() -> None:
    assert describe_error(UndecodableRecord("no framing")) == "no framing"
    # Not a StreamsError (it used to inherit from one only to get here).
    assert not issubclass(WebhookUndeliverableError, StreamsError)
    assert describe_error(WebhookUndeliverableError("503 after 5 attempts")) == (
        "503 after 5 attempts"
    )
    assert describe_error(ProcessorsError("first line\n  second")) == "first line second"
    withheld = describe_error(ValueError("Jane Doe, +44 7700 900123"))
    assert "Jane" not in withheld
    assert "ValueError" in withheld


async def test_bad_and_failing_records_are_dead_lettered_and_the_loop_goes_on() -> None:
    good, failing, later = record(0), record(1), record(3)
    garbage = Message(INTAKE, 0, 2, b"k", b"\x01\x02", good.headers)
    handled: list[int] = []

    async def handler(decoded: Decoded) -> None:
        if decoded.event.subject == uuid.UUID(int=2):
            raise RuntimeError("bug with Jane's data")
        handled.append(int(decoded.event.subject))

    sink = Sink()
    await process_records(
        ListStream([good, failing, garbage, later]), Codec(SETTINGS, source="/t"), handler, sink
    )

    assert handled == [1, 4]
    assert [letter.reason()["deadletter.source.offset"] for letter in sink.letters] == ["1", "2"]
    first, second = sink.letters
    assert first.reason()["deadletter.error.class"] == "RuntimeError"
    assert "Jane" not in first.reason()["deadletter.error.message"]
    assert second.reason()["deadletter.error.class"] == "UndecodableRecord"
    assert (second.key, second.value) == (b"k", b"\x01\x02")
    assert second.headers[: len(good.headers)] == good.headers


async def test_a_bug_of_ours_stops_the_loop_after_keeping_the_record() -> None:
    """A ProcessorsError crashes the agent instead of dead-lettering record after record.

    The failing record is still dead-lettered before the error propagates:
    Faust commits the offset of the record an agent was on as it unwinds.
    """
    first, failing, never = record(0), record(1), record(2)
    handled: list[int] = []

    async def handler(decoded: Decoded) -> None:
        if decoded.event.subject == uuid.UUID(int=2):
            raise SurvivorMismatchError("the case state belongs to another survivor")
        handled.append(int(decoded.event.subject))

    sink = Sink()
    with pytest.raises(SurvivorMismatchError):
        await process_records(
            ListStream([first, failing, never]), Codec(SETTINGS, source="/t"), handler, sink
        )

    assert handled == [1]  # the record after the bug was not touched
    (letter,) = sink.letters
    assert letter.reason()["deadletter.error.class"] == "SurvivorMismatchError"
    assert letter.reason()["deadletter.source.offset"] == "1"
    assert (letter.key, letter.value) == (failing.key, failing.value)


async def test_a_domain_refusal_is_dead_lettered_and_the_loop_goes_on() -> None:
    handled: list[int] = []

    async def handler(decoded: Decoded) -> None:
        if decoded.event.subject == uuid.UUID(int=1):
            raise RecordRejected("referral.unknown: no open referral with this id")
        handled.append(int(decoded.event.subject))

    sink = Sink()
    await process_records(
        ListStream([record(0), record(1)]), Codec(SETTINGS, source="/t"), handler, sink
    )

    assert handled == [2]
    assert [letter.reason()["deadletter.error.class"] for letter in sink.letters] == [
        "RecordRejected"
    ]


async def test_transient_failures_are_retried_until_they_pass() -> None:
    attempts: list[int] = []

    async def flaky(decoded: Decoded) -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise RegistryUnavailableError("registry down")

    sink = Sink()
    await process_records(
        ListStream([record(0)]), Codec(SETTINGS, source="/t"), flaky, sink, retry_delay_s=0
    )

    assert len(attempts) == 3
    assert sink.letters == []


@pytest.mark.parametrize("value", [None, b""])
def test_tombstones_are_dead_lettered_not_dropped(value: bytes | None) -> None:
    letter = DeadLetter.of(
        key=b"k",
        value=value,
        headers=None,
        error=UndecodableRecord("x"),
        topic=INTAKE,
        partition=1,
        offset=9,
    )
    assert letter.value == value
    assert letter.reason()["deadletter.source.partition"] == "1"


class CrashRecorder:
    """The part of a Faust app :func:`stop_app_on_error` uses."""

    def __init__(self) -> None:
        self.crashed: list[BaseException] = []

    async def crash(self, reason: BaseException) -> None:
        self.crashed.append(reason)


async def test_an_error_in_an_agent_crashes_the_app_and_processes_nothing_more() -> None:
    app = CrashRecorder()
    bug = ProcessorsError("a bug of ours")

    async def failing() -> None:
        raise bug

    exits: list[int] = []
    task = asyncio.create_task(
        stop_app_on_error(app, failing(), grace_s=60.0, hard_exit=exits.append)
    )
    for _ in range(500):
        if app.crashed:
            break
        await asyncio.sleep(0.01)
    assert app.crashed == [bug]
    assert not task.done()  # it waits for the worker to stop; it never returns to the stream
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert exits == []  # the graceful stop still has its time


async def test_a_graceful_stop_that_hangs_ends_the_process_after_its_grace() -> None:
    """A crash whose stop never finishes (even with the event loop stuck) still ends the worker."""
    app = CrashRecorder()
    exited = threading.Event()
    exits: list[int] = []

    def hard_exit(code: int) -> None:
        exits.append(code)
        exited.set()

    async def failing() -> None:
        raise ProcessorsError("a bug of ours")

    task = asyncio.create_task(stop_app_on_error(app, failing(), grace_s=0.2, hard_exit=hard_exit))
    while not app.crashed:
        await asyncio.sleep(0.01)
    time.sleep(0.5)  # the loop is blocked, as a hung stop can leave it: the thread still fires
    assert exited.wait(5)
    assert exits == [EXIT_CRASHED]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancelled_agent_is_not_a_crash_faust_restarts_it_after_a_rebalance() -> None:
    app = CrashRecorder()
    started = asyncio.Event()

    async def consuming() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(stop_app_on_error(app, consuming()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert app.crashed == []
