"""Two router workers in one consumer group: shared partitions, same answers, failover."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from schemas.models import Event
from streams.clients import consumer_config, producer_config
from streams.codec import Codec
from streams.provisioning import provision
from streams.settings import KafkaSettings
from tests.doubles import java_partition
from tests.integration.waits import end_offsets
from tests.integration.workers import RunningWorker, start_worker
from tests.unit.domain_builders import consent, identified, provider, request

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SURVIVORS = 30


def status(worker: RunningWorker, survivor: uuid.UUID) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{worker.port}/v1/survivors/{survivor}/status"
    try:
        answer = httpx.get(url, headers=worker.auth, timeout=10)
    except httpx.HTTPError:
        return 0, None
    if answer.status_code != 200:
        return answer.status_code, None
    return 200, answer.json()


def wait_for(check: Any, timeout_s: float, what: str, explain: Any = lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}\n{explain()}")


def explain(
    settings: KafkaSettings, workers: list[RunningWorker], survivors: list[uuid.UUID]
) -> str:
    """Answers per intake partition and the router group's progress on each partition.

    Tells a slow worker from a partition that is assigned but never fetched
    (faust-streaming #629), which this test has caught once.
    """
    intake = f"{settings.topic_namespace}.intake.v1"
    by_partition: dict[int, Counter[int]] = {}
    for sid in survivors:
        partition = java_partition(str(sid).encode(), settings.partitions)
        for worker in workers:
            by_partition.setdefault(partition, Counter())[status(worker, sid)[0]] += 1
    ends = end_offsets(settings, [intake])
    consumer = Consumer(consumer_config(settings, group_id=f"{settings.topic_namespace}-router"))
    try:
        committed = consumer.committed(
            [TopicPartition(intake, p) for p in range(settings.partitions)], timeout=30
        )
    finally:
        consumer.close()
    lines = [
        f"intake partition {tp.partition}: answers {dict(by_partition.get(tp.partition, {}))}, "
        f"router committed {tp.offset} of {ends[intake, tp.partition]}"
        for tp in committed
    ]
    return "\n".join(lines + [f"--- worker {w.port}:\n{w.log_tail()[-1500:]}" for w in workers])


def test_any_worker_answers_the_same_and_failover_keeps_answers(
    bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap, topic_namespace=f"two-{uuid.uuid4().hex[:8]}"
    )
    provision(settings)
    folder = tmp_path_factory.mktemp("two-workers")
    first = start_worker(bootstrap, settings.topic_namespace, folder / "w1")
    second = start_worker(bootstrap, settings.topic_namespace, folder / "w2")
    try:
        codec = Codec(settings, source="/test/agency")
        producer = Producer(producer_config(settings))

        def send(suffix: str, event: Event) -> None:
            record = codec.encode(event, f"{settings.topic_namespace}.{suffix}")
            producer.produce(
                record.topic, key=record.key, value=record.value, headers=list[Any](record.headers)
            )

        home = uuid.uuid4()
        send("providers.v1", provider(home, capacity=SURVIVORS * 2))
        survivors = [uuid.uuid4() for _ in range(SURVIVORS)]
        for sid in survivors:
            for event in (identified(sid), consent(sid), request(sid, uuid.uuid4())):
                send("intake.v1", event)
        assert producer.flush(30) == 0

        def all_offered(worker: RunningWorker) -> bool:
            answers = [status(worker, sid) for sid in survivors]
            return all(
                code == 200
                and bool(body["referrals"])  # identified, request not applied yet
                and body["referrals"][0]["status"] == "offered"
                for code, body in answers
            )

        wait_for(
            lambda: all_offered(first),
            120,
            "every survivor offered, asked via worker 1",
            lambda: explain(settings, [first, second], survivors),
        )
        # Both must have joined the group (a worker mid-rebalance answers 503 Retry-After).
        wait_for(lambda: all_offered(second), 60, "worker 2 answering too")
        via_first = {sid: status(first, sid)[1] for sid in survivors}
        via_second = {sid: status(second, sid)[1] for sid in survivors}
        assert via_first == via_second  # Faust forwards to the owner of the partition

        first.stop()
        wait_for(lambda: all_offered(second), 180, "worker 2 answering for every survivor alone")
        after = {sid: status(second, sid)[1] for sid in survivors}
        assert after == via_first
        assert second.alive(), second.log_tail()
    finally:
        first.stop()
        second.stop()
