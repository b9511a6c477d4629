"""`safepassage escalations follow` on the real broker: filters and output."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from connectors.cli import main
from schemas.models import ReferralEscalated
from schemas.types import EscalationReason, ServiceCategory
from streams.clients import producer_config
from streams.codec import Codec
from streams.provisioning import provision
from streams.settings import KafkaSettings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def escalation(
    level: int, jurisdiction: str, category: ServiceCategory, n: int
) -> ReferralEscalated:
    return ReferralEscalated(
        survivor_id=uuid.UUID(int=n + 1),
        occurred_at=T0 + timedelta(minutes=n),
        referral_id=uuid.UUID(int=1000 + n),
        level=level,
        reason=EscalationReason.DEADLINE_MISSED,
        missed_deadline=T0,
        category=category,
        jurisdiction=jurisdiction,
    )


def test_follow_filters_by_level_jurisdiction_and_category(kafka_settings: KafkaSettings) -> None:
    provision(kafka_settings)
    topic = f"{kafka_settings.topic_namespace}.escalations.v1"
    events = [
        escalation(1, "NL", ServiceCategory.HOUSING, 0),
        escalation(3, "NL", ServiceCategory.HOUSING, 1),
        escalation(3, "BE", ServiceCategory.HOUSING, 2),
        escalation(3, "NL-ZH", ServiceCategory.HEALTH, 3),
        escalation(2, "NL", ServiceCategory.LEGAL_AID, 4),
    ]
    codec = Codec(kafka_settings, source="/test/escalation-engine")
    producer = Producer(producer_config(kafka_settings))
    for event in events:
        record = codec.encode(event, topic)
        producer.produce(
            topic, key=record.key, value=record.value, headers=list[Any](record.headers)
        )
    producer.produce(topic, key=b"x", value=b"not an event")
    assert producer.flush(30) == 0
    env = {
        "SAFEPASSAGE_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "SAFEPASSAGE_TOPIC_NAMESPACE": kafka_settings.topic_namespace,
    }

    result = CliRunner().invoke(
        main,
        [
            "escalations",
            "follow",
            "--from-beginning",
            "--level",
            "3",
            "--jurisdiction",
            "nl",
            "--json",
            "--idle-timeout",
            "8",
        ],
        env=env,
    )

    assert result.exit_code == 0, result.output
    shown = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    # Two survivors, two partitions: no order between them.
    assert sorted((e["level"], e["jurisdiction"]) for e in shown) == [(3, "NL"), (3, "NL-ZH")]
    assert "2 shown, 3 filtered out, 1 undecodable" in result.output

    by_category = CliRunner().invoke(
        main,
        ["escalations", "follow", "--from-beginning", "--category", "LEGAL_AID", "--max", "1"],
        env=env,
    )
    assert by_category.exit_code == 0, by_category.output
    assert "L2" in by_category.output and "LEGAL_AID" in by_category.output
