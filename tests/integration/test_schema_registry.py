"""A real Apicurio Registry, spoken to through its Confluent-compatible API.

No Kafka broker is involved: the registry keeps its schemas in memory. The
first run builds the registry with Maven (see infra/registry/pom.xml).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from infra.exceptions import RegistryBuildError
from infra.registry import PROJECT_DIR, RegistrySettings, SchemaRegistry
from schemas.models import CaseClosed
from schemas.types import CaseOutcome
from streams.clients import producer_config
from streams.codec import Codec, ConfluentSchemaRegistry, Decoded, Framing
from streams.provisioning import provision
from streams.settings import KafkaSettings
from tests.integration.conftest import free_port
from tests.integration.waits import read_to_end

pytestmark = pytest.mark.integration

REFERRAL_V1: dict[str, Any] = {
    "type": "record",
    "name": "ReferralCreated",
    "namespace": "org.safepassage.test",
    "fields": [
        {"name": "referral_id", "type": "string"},
        {"name": "service", "type": "string"},
    ],
}
# A new required field without a default: old readers can read new data, but
# new readers cannot read old data, so this is not backward (hence not FULL)
# compatible.
REFERRAL_BREAKING: dict[str, Any] = {
    **REFERRAL_V1,
    "fields": [*REFERRAL_V1["fields"], {"name": "priority", "type": "int"}],
}
# The same field with a default is fully compatible.
REFERRAL_V2: dict[str, Any] = {
    **REFERRAL_V1,
    "fields": [*REFERRAL_V1["fields"], {"name": "priority", "type": "int", "default": 0}],
}


def avro(schema: Mapping[str, Any]) -> Schema:
    return Schema(json.dumps(schema), "AVRO")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaRegistry]:
    """A registry of this module's own, on a free port, stopped afterwards."""
    state: Path = tmp_path_factory.mktemp("registry")
    launcher = SchemaRegistry(RegistrySettings(state_dir=state, port=free_port(), heap="384m"))
    launcher.start()
    try:
        yield launcher
    finally:
        launcher.stop()


@pytest.fixture
def client(registry: SchemaRegistry) -> Iterator[SchemaRegistryClient]:
    with SchemaRegistryClient({"url": registry.ccompat_url}) as opened:
        yield opened


def test_start_is_idempotent_and_status_reports_the_running_registry(
    registry: SchemaRegistry,
) -> None:
    pid = registry.pid()
    assert pid is not None

    again = registry.start()

    assert again.already_running
    assert again.pid == pid
    status = registry.status()
    assert status.pid == pid
    assert status.answering
    assert registry.ccompat_url == f"{registry.url}/apis/ccompat/v7"


def test_register_fetch_and_refuse_a_breaking_version(client: SchemaRegistryClient) -> None:
    subject = "referral-created-value"

    schema_id = client.register_schema(subject, avro(REFERRAL_V1))

    fetched = client.get_schema(schema_id)
    assert fetched.schema_type == "AVRO"
    assert fetched.schema_str is not None
    assert json.loads(fetched.schema_str) == REFERRAL_V1
    latest = client.get_latest_version(subject)
    assert latest.schema_id == schema_id
    assert latest.version == 1

    client.set_compatibility(subject_name=subject, level="FULL_TRANSITIVE")
    assert client.get_compatibility(subject) == "FULL_TRANSITIVE"

    assert not client.test_compatibility(subject, avro(REFERRAL_BREAKING))
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, avro(REFERRAL_BREAKING))
    assert refused.value.http_status_code == 409
    assert client.get_versions(subject) == [1]

    compatible_id = client.register_schema(subject, avro(REFERRAL_V2))
    assert compatible_id != schema_id
    assert client.get_versions(subject) == [1, 2]


def test_unreachable_maven_central_is_one_paragraph(
    tmp_path: Path, unreachable_maven: None
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROJECT_DIR / "pom.xml", project / "pom.xml")
    registry = SchemaRegistry(RegistrySettings(state_dir=tmp_path / "state"), project)

    with pytest.raises(RegistryBuildError) as caught:
        registry.build()

    message = str(caught.value)
    assert message.startswith("Could not build the schema registry")
    assert "Maven Central could not be reached" in message
    assert "\n" not in message
    assert "Traceback" not in message
    assert registry.needs_build()


def test_codec_in_confluent_wire_format_through_kafka_and_the_registry(
    registry: SchemaRegistry, bootstrap: str
) -> None:
    """Producer and consumer each resolve schema ids with the real registry."""
    settings = KafkaSettings(bootstrap_servers=bootstrap, topic_namespace=f"sr-{uuid4().hex[:8]}")
    provision(settings)
    writer_registry = ConfluentSchemaRegistry.from_config({"url": registry.ccompat_url})
    reader_registry = ConfluentSchemaRegistry.from_config({"url": registry.ccompat_url})
    with writer_registry, reader_registry:
        got = _round_trip(settings, writer_registry, reader_registry)
    assert sorted((d.event for d in got), key=lambda e: e.occurred_at) == EVENTS
    assert {d.framing for d in got} == {Framing.CONFLUENT}
    with SchemaRegistryClient({"url": registry.ccompat_url}) as client:
        assert "org.safepassage.events.CaseClosed" in client.get_subjects()


EVENTS = [
    CaseClosed(
        survivor_id=UUID(int=i + 1),
        occurred_at=datetime(2026, 11, 2, 8, 0, i, tzinfo=UTC),
        agency_id="agency-police-3",
        outcome=CaseOutcome.SUPPORT_COMPLETED,
    )
    for i in range(20)
]


def _round_trip(
    settings: KafkaSettings,
    writer_registry: ConfluentSchemaRegistry,
    reader_registry: ConfluentSchemaRegistry,
) -> list[Decoded]:
    intake = f"{settings.topic_namespace}.intake.v1"
    events = EVENTS
    writer = Codec(settings, source="/safepassage/test-agency", resolver=writer_registry)
    producer = Producer(producer_config(settings))
    for event in events:
        record = writer.encode(event, intake)
        assert record.value[0] == 0  # Confluent magic byte, then the registry's id
        producer.produce(intake, key=record.key, value=record.value, headers=list(record.headers))
    assert producer.flush(30) == 0

    # A fresh codec knows no ids: it must ask the registry for each one.
    reader = Codec(settings, source="/safepassage/test-reader", resolver=reader_registry)
    return [
        reader.decode(msg.value(), list[Any](msg.headers() or []), topic=intake, key=msg.key())
        for msg in read_to_end(settings, intake)
    ]
