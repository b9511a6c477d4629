"""A closed case is erased by a real router worker when its retention period ends.

The worker's clock is driven by ticks (``SAFEPASSAGE_ESCALATION_CLOCK=external``),
so a year passes in two records: a tick one second before the end of the
retention period leaves the survivor alone, the tick at its end erases them
exactly as an erasure request would (status and data key tombstoned, the
provider that held the offer told to erase, ``erased`` audited).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Message, Producer

from processors.sla import default_policy
from schemas.models import Event, ReferralCancelled
from schemas.types import CancelReason
from streams.clients import producer_config
from streams.codec import Codec
from streams.provisioning import provision
from streams.settings import KafkaSettings
from streams.ticks import publish_ticks, tick_topic
from streams.topics import Topics
from tests.integration.waits import TopicReader, wait_caught_up, wait_until
from tests.integration.workers import start_worker
from tests.unit.domain_builders import closed, consent, identified, provider, request, source_for

pytestmark = [pytest.mark.integration]

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CLOSED_AT = T0 + timedelta(hours=1)
ERASE_AT = CLOSED_AT + default_policy().retention.after_closure


@pytest.mark.timeout(600)
def test_a_closed_case_is_erased_by_the_worker_when_its_retention_ends(
    bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap, topic_namespace=f"ret-{uuid.uuid4().hex[:8]}"
    )
    ns = settings.topic_namespace
    provision(settings)
    topics = Topics.of(settings)
    codec = Codec(settings, source="/test/agency")
    producer = Producer(producer_config(settings))

    def send(event: Event, topic: str) -> None:
        record = codec.encode(event, topic, source=source_for(event))
        producer.produce(
            record.topic, key=record.key, value=record.value, headers=list[Any](record.headers)
        )

    shelter, sid, rid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    send(provider(shelter, capacity=5), f"{ns}.providers.v1")
    assert producer.flush(30) == 0
    worker = start_worker(bootstrap, ns, tmp_path_factory.mktemp("retention"))
    housing = TopicReader(settings, [topics.referral("housing")])
    shredding = TopicReader(settings, [topics.survivor_keys, topics.case_status, topics.audit])
    try:
        for event in (
            identified(sid, at=T0),
            consent(sid, at=T0),
            request(sid, rid, at=T0),
            closed(sid, at=CLOSED_AT),
        ):
            send(event, f"{ns}.intake.v1")
        assert producer.flush(30) == 0
        told: list[ReferralCancelled] = []

        def cancellations(reason: CancelReason) -> bool:
            for m in housing.to_end():
                event = codec.decode(m.value(), m.headers(), topic=m.topic(), key=m.key()).event
                if isinstance(event, ReferralCancelled):
                    told.append(event)
            return any(c.reason is reason for c in told)

        wait_until(
            lambda: cancellations(CancelReason.CASE_CLOSED),
            "the closure's cancellation",
            on_timeout=worker.log_tail,
        )

        mine: list[Message] = []

        def caught_up() -> None:
            wait_caught_up(
                settings,
                f"{ns}-router",
                [f"{ns}.intake.v1", tick_topic(settings)],
                on_timeout=worker.log_tail,
            )
            mine.extend(m for m in shredding.to_end() if m.key() == str(sid).encode())

        publish_ticks(settings, ERASE_AT - timedelta(seconds=1))
        caught_up()
        assert not [m for m in mine if m.value() is None], "erased before the period ended"

        publish_ticks(settings, ERASE_AT)
        wait_until(
            lambda: cancellations(CancelReason.ERASURE),
            "the retention erasure's notice to the provider",
            on_timeout=worker.log_tail,
        )
        caught_up()
    finally:
        worker.stop()
        housing.close()
        shredding.close()

    erasures = [c for c in told if c.reason is CancelReason.ERASURE]
    assert [(c.referral_id, c.provider_id) for c in erasures] == [(rid, shelter)]
    tombstones = {m.topic() for m in mine if m.value() is None}
    assert tombstones == {topics.survivor_keys, topics.case_status}
    audits = [json.loads(m.value() or b"null") for m in mine if m.topic() == topics.audit]
    assert [a["reasons"] for a in audits if a["action"] == "erased"] == [["retention.elapsed"]]
