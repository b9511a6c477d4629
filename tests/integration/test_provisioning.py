"""Provisioning against the real broker: create, repeat, drift, never delete."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from connectors.cli import main
from streams.provisioning import describe, provision
from streams.settings import KafkaSettings
from streams.topics import catalog

pytestmark = pytest.mark.integration


def wait_for_config(settings: KafkaSettings, topic: str, key: str, value: str) -> None:
    """Config changes reach the broker's metadata cache asynchronously."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if describe(settings, [topic])[topic].config.get(key) == value:
            return
        time.sleep(0.2)
    raise AssertionError(f"{topic}: {key} never became {value}")


def test_provision_creates_every_catalog_topic_then_is_a_no_op(
    kafka_settings: KafkaSettings,
) -> None:
    specs = catalog(kafka_settings)

    plan, created = provision(kafka_settings)
    assert set(created) == {s.name for s in specs}
    assert not plan.drift

    again, created_again = provision(kafka_settings)
    assert created_again == ()
    assert set(again.in_order) == {s.name for s in specs}

    observed = describe(kafka_settings)
    for spec in specs:
        topic = observed[spec.name]
        assert topic.partitions == spec.partitions
        assert topic.replication_factor == spec.replication_factor
        for key, value in spec.config().items():
            assert topic.config[key] == value


def test_drift_is_reported_and_existing_data_is_never_touched(
    kafka_settings: KafkaSettings,
) -> None:
    specs = {s.name.rsplit(".", 2)[-2]: s for s in catalog(kafka_settings)}
    intake = specs["intake"]
    admin = AdminClient({"bootstrap.servers": kafka_settings.bootstrap_servers})
    # An intake topic made by hand with the wrong partition count, holding data.
    admin.create_topics([NewTopic(intake.name, num_partitions=2, replication_factor=1)])[
        intake.name
    ].result(timeout=30)
    producer = Producer({"bootstrap.servers": kafka_settings.bootstrap_servers})
    producer.produce(intake.name, key=b"k", value=b"precious")
    assert producer.flush(10) == 0
    provision(kafka_settings)
    # Someone changes a config by hand.
    escalations = specs["escalations"]
    resource = ConfigResource(
        ResourceType.TOPIC,
        escalations.name,
        incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    wait_for_config(kafka_settings, escalations.name, "retention.ms", "1000")

    plan, created = provision(kafka_settings)

    assert created == ()
    drift = {(d.topic, d.setting): d for d in plan.drift}
    assert drift[(intake.name, "partitions")].actual == "2"
    assert drift[(escalations.name, "retention.ms")].actual == "1000"
    assert describe(kafka_settings, [intake.name])[intake.name].partitions == 2
    watermarks = admin.list_topics(timeout=10).topics[intake.name].partitions
    assert len(watermarks) == 2  # not recreated


def test_cli_provision_check_exits_2_on_drift_and_list_shows_configs(
    kafka_settings: KafkaSettings,
) -> None:
    env = {
        "SAFEPASSAGE_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "SAFEPASSAGE_TOPIC_NAMESPACE": kafka_settings.topic_namespace,
        "COLUMNS": "250",
    }
    runner = CliRunner()
    first = runner.invoke(main, ["topics", "provision", "--check"], env=env)
    assert first.exit_code == 0, first.output
    assert first.output.count("created") == len(catalog(kafka_settings))

    listing = runner.invoke(main, ["topics", "list"], env=env)
    assert listing.exit_code == 0, listing.output
    assert f"{kafka_settings.topic_namespace}.providers.v1" in listing.output
    assert "compact" in listing.output

    audit = f"{kafka_settings.topic_namespace}.audit.v1"
    resource = ConfigResource(
        ResourceType.TOPIC,
        audit,
        incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin = AdminClient({"bootstrap.servers": kafka_settings.bootstrap_servers})
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    wait_for_config(kafka_settings, audit, "cleanup.policy", "compact")
    checked = runner.invoke(main, ["topics", "provision", "--check"], env=env)
    assert checked.exit_code == 2, checked.output
    assert "drift" in checked.output
