"""The codec end to end with a real Faust worker on the real broker.

* A plain confluent-kafka producer writes events; a Faust agent decodes them
  with the codec, re-publishes them; a plain consumer decodes them.
* 1,000 valid intake records interleaved with 100 malformed records of each
  kind: every valid one is processed, every malformed one is dead-lettered
  with its reason and untouched bytes, and the worker keeps consuming.
* A bug of ours (a ``ProcessorsError``) stops the worker instead of
  dead-lettering record after record, and the record it failed on is kept.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from schemas.models import CaseClosed, ProviderCapacity, ReferralCancelled
from schemas.types import Actor, CancelReason, CaseOutcome, ServiceCategory
from streams.clients import consumer_config, producer_config
from streams.cloudevents import CE_ID
from streams.codec import Codec
from streams.provisioning import provision
from streams.settings import KafkaSettings
from streams.topics import referral_topic
from tests.integration.apps.contract_worker import BUG_AGENCY
from tests.integration.conftest import REPO, create_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VALID = 1000
PER_KIND = 100
MAX_RECORD_BYTES = 10_000
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@contextlib.contextmanager
def contract_worker(bootstrap: str, folder: Path) -> Iterator[dict[str, str]]:
    """Topics of a fresh namespace and a running Faust worker bound to them."""
    namespace = f"contract-{uuid.uuid4().hex[:10]}"
    settings = KafkaSettings(bootstrap_servers=bootstrap, topic_namespace=namespace)
    provision(settings)
    create_topic(bootstrap, f"{namespace}.test-processed", 1)
    log_path = folder / "worker.log"
    env = {
        **os.environ,
        "SAFEPASSAGE_BOOTSTRAP_SERVERS": bootstrap,
        "SAFEPASSAGE_TOPIC_NAMESPACE": namespace,
        "SAFEPASSAGE_LOG_FORMAT": "json",
        "TEST_MAX_RECORD_BYTES": str(MAX_RECORD_BYTES),
        "TEST_DATA_DIR": str(folder / "data"),
    }
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faust",
                "-A",
                "tests.integration.apps.contract_worker",
                "worker",
                "-l",
                "info",
                "--without-web",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    env["WORKER_PID"] = str(worker.pid)
    env["WORKER_LOG"] = str(log_path)
    try:
        yield env
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:  # Faust can hang on shutdown; it holds no state we need
            worker.kill()
            worker.wait(10)


@pytest.fixture(scope="module")
def contract_env(
    bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """One worker shared by the tests that leave it running."""
    with contract_worker(bootstrap, tmp_path_factory.mktemp("worker")) as env:
        yield env


def settings_of(env: dict[str, str]) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=env["SAFEPASSAGE_BOOTSTRAP_SERVERS"],
        topic_namespace=env["SAFEPASSAGE_TOPIC_NAMESPACE"],
    )


def case_closed(i: int) -> CaseClosed:
    return CaseClosed(
        survivor_id=uuid.UUID(int=i + 1),
        occurred_at=T0 + timedelta(seconds=i),
        agency_id="agency-ngo-7",
        outcome=CaseOutcome.SUPPORT_COMPLETED,
    )


def cancelled(i: int) -> ReferralCancelled:
    return ReferralCancelled(
        survivor_id=uuid.UUID(int=10_000 + i),
        occurred_at=T0 + timedelta(minutes=i),
        referral_id=uuid.UUID(int=20_000 + i),
        reason=CancelReason.CONSENT_WITHDRAWN,
        cancelled_by=Actor.AGENCY,
        provider_id=uuid.UUID(int=30_000 + (i % 5)),
        category=ServiceCategory.HOUSING,
    )


def read(settings: KafkaSettings, topic: str, expected: int, timeout_s: float = 120.0) -> list[Any]:
    """Read a topic from the start until `expected` records arrived."""
    return read_until(settings, topic, lambda out: len(out) >= expected, timeout_s)


def read_until(
    settings: KafkaSettings, topic: str, done: Any, timeout_s: float = 120.0
) -> list[Any]:
    """Read a topic from the start until ``done(records so far)`` or the timeout."""
    consumer = Consumer(consumer_config(settings, group_id=f"reader-{uuid.uuid4().hex}"))
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not done(out) and time.monotonic() < deadline:
            out.extend(m for m in consumer.consume(500, timeout=1.0) if m.error() is None)
    finally:
        consumer.close()
    return out


def processed_ids(settings: KafkaSettings, wanted: set[bytes]) -> set[bytes]:
    """Event ids the worker reported processed, read until ``wanted`` are all there."""
    topic = f"{settings.topic_namespace}.test-processed"
    records = read_until(settings, topic, lambda out: wanted <= {m.key() for m in out})
    return {m.key() for m in records}


def wait_until_worker_joined(env: dict[str, str], timeout_s: float = 120.0) -> None:
    """The worker has partitions assigned once it logs that it is ready."""
    deadline = time.monotonic() + timeout_s
    log = Path(env["WORKER_LOG"])
    while time.monotonic() < deadline:
        if "Ready" in log.read_text(errors="replace") or "ready" in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise AssertionError("the Faust worker never became ready:\n" + log.read_text()[-3000:])


def test_plain_producer_to_typed_faust_agent_and_back_to_a_plain_consumer(
    contract_env: dict[str, str],
) -> None:
    settings = settings_of(contract_env)
    codec = Codec(settings, source="/safepassage/test-agency")
    events = [cancelled(i) for i in range(50)]
    producer = Producer(producer_config(settings))
    intake = f"{settings.topic_namespace}.intake.v1"
    for event in events:
        record = codec.encode(event, intake)
        producer.produce(
            intake, key=record.key, value=record.value, headers=list[Any](record.headers)
        )
    assert producer.flush(30) == 0

    relayed = read(settings, referral_topic(settings, "housing"), len(events))

    decoded = [codec.decode(m.value(), m.headers(), topic=m.topic(), key=m.key()) for m in relayed]
    assert sorted(
        (d.event for d in decoded), key=lambda e: str(e.subject) + str(e.occurred_at)
    ) == sorted(events, key=lambda e: str(e.subject) + str(e.occurred_at))
    assert {d.envelope.source for d in decoded} == {"/safepassage/test-worker"}
    for message, item in zip(relayed, decoded, strict=True):
        assert isinstance(item.event, ReferralCancelled)
        assert message.key() == str(item.event.provider_id).encode()  # keyed for the provider


def malformed_records(
    codec: Codec, intake: str, providers: str
) -> list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]]:
    """(expected error class, key, value, headers) for 100 records of each bad kind."""
    rng = random.Random(7)
    out: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = []
    for i in range(PER_KIND):
        good = codec.encode(case_closed(50_000 + i), intake)
        # 1. bytes that are no framing at all
        out.append(
            (
                "UndecodableRecord",
                good.key,
                bytes(rng.randrange(1, 256) for _ in range(40)),
                good.headers,
            )
        )
        # 2. single-object framing with a fingerprint no schema has
        out.append(
            (
                "UnknownSchema",
                good.key,
                b"\xc3\x01" + rng.randbytes(8) + good.value[10:],
                good.headers,
            )
        )
        # 3. Confluent framing with a schema id no registry gave out
        out.append(
            (
                "UnknownSchema",
                good.key,
                b"\x00" + (900_000 + i).to_bytes(4, "big") + good.value[10:],
                good.headers,
            )
        )
        # 4. valid Avro of an event type that does not belong on intake
        capacity = ProviderCapacity(
            provider_id=uuid.uuid4(),
            occurred_at=T0,
            category=ServiceCategory.HEALTH,
            total=10,
            available=3,
        )
        wrong = codec.encode(capacity, providers)
        out.append(("WrongEventType", good.key, wrong.value, wrong.headers))
        # 5. a required CloudEvents header missing
        out.append(
            (
                "MissingHeader",
                good.key,
                good.value,
                [h for h in good.headers if h[0] != "ce_source"],
            )
        )
        # 6. larger than the consumer accepts
        out.append(
            ("OversizedRecord", good.key, good.value + b"\x00" * MAX_RECORD_BYTES, good.headers)
        )
    return out


def test_valid_records_are_processed_and_every_malformed_one_is_dead_lettered(
    contract_env: dict[str, str],
) -> None:
    settings = settings_of(contract_env)
    ns = settings.topic_namespace
    intake, providers = f"{ns}.intake.v1", f"{ns}.providers.v1"
    codec = Codec(settings, source="/safepassage/test-agency")
    valid = [codec.encode(case_closed(i), intake) for i in range(VALID)]
    bad = malformed_records(codec, intake, providers)
    batch: list[tuple[str | None, bytes | None, bytes, list[tuple[str, bytes]]]] = [
        (None, r.key, r.value, r.headers) for r in valid
    ]
    for n, (kind, key, value, headers) in enumerate(bad):
        batch.append((kind, key, value, [*headers, ("x-test-id", str(n).encode())]))
    random.Random(11).shuffle(batch)
    wait_until_worker_joined(contract_env)

    producer = Producer(producer_config(settings, **{"message.max.bytes": 2_000_000}))
    for _, key, value, headers in batch:
        producer.produce(intake, key=key, value=value, headers=list[Any](headers))
        producer.poll(0)
    assert producer.flush(60) == 0

    valid_ids = {dict(r.headers)[CE_ID] for r in valid}
    bad_ids = {dict(headers)[CE_ID] for _, _, _, headers in bad if CE_ID in dict(headers)}
    processed = processed_ids(settings, valid_ids)
    assert valid_ids <= processed
    assert not processed & bad_ids
    letters = read(settings, f"{ns}.deadletter.v1", len(bad))
    assert len(letters) == len(bad)
    for letter in letters:
        got = dict(letter.headers())
        n = int(got["x-test-id"])
        kind, key, value, original_headers = bad[n]
        assert got["deadletter.error.class"].decode() == kind
        assert got["deadletter.error.message"]
        assert got["deadletter.source.topic"].decode() == intake
        assert int(got["deadletter.source.offset"]) >= 0
        assert letter.key() == key and letter.value() == value  # untouched
        assert letter.headers()[: len(original_headers) + 1] == [
            *original_headers,
            ("x-test-id", str(n).encode()),
        ]

    # Still alive, still consuming.
    assert os.waitpid(int(contract_env["WORKER_PID"]), os.WNOHANG) == (0, 0)
    more = [codec.encode(case_closed(VALID + i), intake) for i in range(10)]
    for r in more:
        producer.produce(intake, key=r.key, value=r.value, headers=list[Any](r.headers))
    assert producer.flush(30) == 0
    more_ids = {dict(r.headers)[CE_ID] for r in more}
    assert more_ids <= processed_ids(settings, more_ids)


def test_a_bug_of_ours_stops_the_worker_and_keeps_the_record(
    bootstrap: str, tmp_path: Path
) -> None:
    """A ProcessorsError is not dead-lettered record after record: the worker stops.

    The record it failed on is in the dead-letter topic (Faust commits the
    offset of the record its agent was on as it goes down), and the record
    after it is not processed by this worker.
    """
    with contract_worker(bootstrap, tmp_path) as env:
        settings = settings_of(env)
        intake = f"{settings.topic_namespace}.intake.v1"
        codec = Codec(settings, source="/safepassage/test-agency")
        # One survivor, so one partition, in order: the bug comes between the two others.
        one = {"survivor_id": uuid.UUID(int=1)}
        before, after = (case_closed(i).model_copy(update=one) for i in (0, 2))
        bug = case_closed(1).model_copy(update={**one, "agency_id": BUG_AGENCY})
        records = [codec.encode(e, intake) for e in (before, bug, after)]
        wait_until_worker_joined(env)
        producer = Producer(producer_config(settings))
        for r in records:
            producer.produce(intake, key=r.key, value=r.value, headers=list[Any](r.headers))
        assert producer.flush(30) == 0

        (letter,) = read(settings, f"{settings.topic_namespace}.deadletter.v1", 1)
        got = dict(letter.headers())
        assert got["deadletter.error.class"] == b"ProcessorsError"
        assert got["deadletter.error.message"] == b"test bug: the router cannot handle this case"
        assert (letter.key(), letter.value()) == (records[1].key, records[1].value)

        pid = int(env["WORKER_PID"])
        deadline = time.monotonic() + 60
        while (status := os.waitpid(pid, os.WNOHANG)) == (0, 0):
            if time.monotonic() > deadline:
                tail = Path(env["WORKER_LOG"]).read_text(errors="replace")[-4000:]
                pytest.fail(f"the worker did not stop on the bug; its log ends with:\n{tail}")
            time.sleep(0.5)
        assert os.waitstatus_to_exitcode(status[1]) != 0
        log = Path(env["WORKER_LOG"]).read_text(errors="replace")
        assert "record.stopped" in log and "ProcessorsError" in log
        first_id, after_id = (dict(r.headers)[CE_ID] for r in (records[0], records[2]))
        seen = {m.key() for m in read(settings, f"{settings.topic_namespace}.test-processed", 2, 5)}
        assert seen == {first_id}
        assert after_id not in seen
