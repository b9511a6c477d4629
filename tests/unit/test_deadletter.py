"""Failure policy and the decode-handle-or-dead-letter loop, without a broker."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.models import CaseClosed
from schemas.types import CaseOutcome
from streams.codec import Codec, Decoded
from streams.consuming import process_records
from streams.deadletter import Action, DeadLetter, default_policy, describe_error
from streams.exceptions import RegistryUnavailableError, UndecodableRecord
from streams.settings import KafkaSettings

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


def test_policy_retries_transient_failures_and_dead_letters_the_rest() -> None:
    assert default_policy(RegistryUnavailableError("down")) is Action.RETRY
    assert default_policy(UndecodableRecord("garbage")) is Action.DEAD_LETTER
    assert default_policy(KeyError("surprise")) is Action.DEAD_LETTER


def test_foreign_error_messages_are_withheld() -> None:
    assert describe_error(UndecodableRecord("no framing")) == "no framing"
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
