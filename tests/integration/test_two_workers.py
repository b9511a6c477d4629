"""Two router workers in one consumer group: shared partitions, one answer, failover.

Status is read through the intake (its copy of ``case-status.v1``), the way
operators read it: the answer does not depend on which worker owns a
survivor. Both workers own intake partitions while the survivors are
routed; after one stops, the other owns every partition and goes on with
the same cases (their state moved through the tables' changelogs): every
survivor's offer is then accepted and shows as accepted, with everything
else the status said before unchanged.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from schemas.models import Event
from streams.clients import admin_client, consumer_config, producer_config
from streams.codec import Codec
from streams.provisioning import provision
from streams.settings import KafkaSettings
from streams.topics import Topics
from tests.doubles import java_partition
from tests.integration.intake import StatusClient, running_intake
from tests.integration.waits import end_offsets, read_to_end, wait_until
from tests.integration.workers import RunningWorker, start_worker
from tests.unit.domain_builders import accepted, consent, identified, provider, request, source_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SURVIVORS = 30


def owned_intake_partitions(settings: KafkaSettings) -> list[set[int]] | None:
    """The intake partitions each member of the router's group owns (None while it rebalances)."""
    group = f"{settings.topic_namespace}-router"
    intake = Topics.of(settings).intake
    admin = admin_client(settings)  # it must outlive its future
    try:
        description = admin.describe_consumer_groups([group])[group].result(30)
    except KafkaException:  # not yet known to the coordinator: ask again
        return None
    if str(description.state).split(".")[-1] != "STABLE":
        return None
    return [
        {tp.partition for tp in member.assignment.topic_partitions if tp.topic == intake}
        for member in description.members
    ]


def explain(
    settings: KafkaSettings,
    intake: StatusClient,
    workers: list[RunningWorker],
    survivors: list[uuid.UUID],
) -> str:
    """Answers per intake partition and the router group's progress on each partition.

    Tells a slow worker from a partition that is assigned but never fetched
    (faust-streaming #629), which this test has caught once.
    """
    topic = Topics.of(settings).intake
    by_partition: dict[int, Counter[str]] = {}
    for sid in survivors:
        partition = java_partition(str(sid).encode(), settings.partitions)
        code, body = intake.status(sid)
        shown = body["referrals"][0]["status"] if code == 200 and body["referrals"] else code
        by_partition.setdefault(partition, Counter())[str(shown)] += 1
    ends = end_offsets(settings, [topic])
    consumer = Consumer(consumer_config(settings, group_id=f"{settings.topic_namespace}-router"))
    try:
        committed = consumer.committed(
            [TopicPartition(topic, p) for p in range(settings.partitions)], timeout=30
        )
    finally:
        consumer.close()
    lines = [
        f"intake partition {tp.partition}: answers {dict(by_partition.get(tp.partition, {}))}, "
        f"router committed {tp.offset} of {ends[topic, tp.partition]}"
        for tp in committed
    ]
    lines.append(f"group members own intake partitions: {owned_intake_partitions(settings)}")
    lines.extend(behind_the_answers(settings, intake, survivors))
    return "\n".join(
        lines + [f"--- worker {i}:\n{w.log_tail()[-1500:]}" for i, w in enumerate(workers, 1)]
    )


def behind_the_answers(
    settings: KafkaSettings, intake: StatusClient, survivors: list[uuid.UUID]
) -> list[str]:
    """For each survivor the intake does not show as offered: what the topics hold about them.

    Tells a status the router never published (look for a dead letter or
    the audit) from one published but not served by the intake's copy.
    """
    topics = Topics.of(settings)
    missing = {str(s) for s in survivors if intake.status(s)[0] != 200}
    if not missing:
        return []
    lines = [f"survivors the intake does not show: {sorted(missing)}"]
    for topic in (topics.case_status, topics.audit, topics.deadletter):
        for record in read_to_end(settings, topic):
            key = (record.key() or b"").decode(errors="replace")
            text = (record.value() or b"").decode(errors="replace")
            if key in missing or any(sid in text for sid in missing):
                lines.append(
                    f"{topic}[{record.partition()}]@{record.offset()} key={key}: {text[:400]}"
                )
    return lines


def test_two_workers_share_the_survivors_and_failover_keeps_their_cases(
    bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap, topic_namespace=f"two-{uuid.uuid4().hex[:8]}"
    )
    provision(settings)
    topics = Topics.of(settings)
    folder: Path = tmp_path_factory.mktemp("two-workers")
    first = start_worker(bootstrap, settings.topic_namespace, folder / "w1")
    second = start_worker(bootstrap, settings.topic_namespace, folder / "w2")
    try:
        with running_intake(settings, folder / "intake") as intake:
            codec = Codec(settings, source="/test/agency")
            producer = Producer(producer_config(settings))

            def send(topic: str, *events: Event) -> None:
                for event in events:
                    record = codec.encode(event, topic, source=source_for(event))
                    producer.produce(
                        record.topic,
                        key=record.key,
                        value=record.value,
                        headers=list[Any](record.headers),
                    )
                assert producer.flush(30) == 0

            def why() -> str:
                return explain(settings, intake, [first, second], survivors)

            survivors = [uuid.uuid4() for _ in range(SURVIVORS)]
            # Both workers in the group, each owning intake partitions, before any survivor.
            wait_until(
                lambda: (
                    (owned := owned_intake_partitions(settings)) is not None
                    and len(owned) == 2
                    and all(owned)
                ),
                "two workers sharing the intake partitions",
            )
            home = uuid.uuid4()
            send(topics.providers, provider(home, capacity=SURVIVORS * 2))
            referrals = {sid: uuid.uuid4() for sid in survivors}
            for sid in survivors:
                send(topics.intake, identified(sid), consent(sid), request(sid, referrals[sid]))

            def all_in(status: str) -> dict[uuid.UUID, Any] | None:
                answers = {sid: intake.status(sid) for sid in survivors}
                ok = all(
                    code == 200 and body["referrals"] and body["referrals"][0]["status"] == status
                    for code, body in answers.values()
                )
                return {sid: body for sid, (_, body) in answers.items()} if ok else None

            before = wait_until(lambda: all_in("offered"), "every survivor offered", on_timeout=why)
            partitions = {java_partition(str(s).encode(), settings.partitions) for s in survivors}
            assert len(partitions) > 1  # the survivors really are spread over the partitions

            first.stop()
            # One worker left, owning every intake partition; the intake answers throughout.
            assert all_in("offered") == before
            wait_until(
                lambda: (
                    (owned := owned_intake_partitions(settings)) is not None
                    and owned == [set(range(settings.partitions))]
                ),
                "the second worker owning every intake partition",
            )
            for sid in survivors:
                send(topics.provider_responses, accepted(sid, referrals[sid], home, 1))
            after = wait_until(
                lambda: all_in("accepted"),
                "every survivor accepted, through the worker left",
                timeout_s=180,
                on_timeout=why,
            )
            changing = {"status", "deadline", "updated_at"}
            for sid in survivors:
                was, now = before[sid], after[sid]
                assert {k: v for k, v in now.items() if k not in ("referrals", "last_update")} == {
                    k: v for k, v in was.items() if k not in ("referrals", "last_update")
                }
                assert {k: v for k, v in now["referrals"][0].items() if k not in changing} == {
                    k: v for k, v in was["referrals"][0].items() if k not in changing
                }
            # No answer was refused for want of a case the stopped worker had held.
            assert read_to_end(settings, topics.deadletter) == []
            assert second.alive(), second.log_tail()
    finally:
        first.stop()
        second.stop()
