"""The launcher on a broker of the test's own: idempotent start, stale PID, kill -9."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.cli import main
from infra import Deployment, single_node
from streams.settings import KafkaSettings
from tests.integration.conftest import create_topic, dedicated_settings
from tests.integration.test_produce_consume import KEYS, PER_KEY, consume_all, produce_numbered

pytestmark = pytest.mark.integration


DASHED_CLUSTER_ID = "-" + base64.urlsafe_b64encode(bytes(16)).rstrip(b"=").decode()[1:]
"""A valid id that starts with "-": older launchers stored such ids about once in 64."""


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = single_node(dedicated_settings(tmp_path_factory.mktemp("own-kafka")))
    deployment.directory.mkdir(parents=True, exist_ok=True)
    (deployment.directory / "cluster.id").write_text(DASHED_CLUSTER_ID + "\n")
    deployment.start()
    yield deployment
    deployment.stop()


def cli_env(deployment: Deployment) -> dict[str, str]:
    settings = deployment.settings
    return {
        "SAFEPASSAGE_BROKER_STATE_DIR": str(settings.state_dir),
        "SAFEPASSAGE_BROKER_PORT": str(settings.port),
        "SAFEPASSAGE_BROKER_CONTROLLER_PORT": str(settings.resolved_controller_port),
        "SAFEPASSAGE_BROKER_SECURITY": settings.security,
    }


def test_a_stored_cluster_id_that_starts_with_a_dash_formats_the_storage(
    own_broker: Deployment,
) -> None:
    meta = (own_broker.nodes[0].data_dir / "meta.properties").read_text()
    assert f"cluster.id={DASHED_CLUSTER_ID}" in meta.splitlines()


def test_start_when_running_says_so_and_exits_zero(own_broker: Deployment) -> None:
    pid = own_broker.nodes[0].pid()

    result = CliRunner().invoke(main, ["kafka", "start"], env=cli_env(own_broker))

    assert result.exit_code == 0, result.output
    assert "already running" in result.output
    assert own_broker.nodes[0].pid() == pid


def test_start_with_the_other_security_setting_is_one_clear_error(own_broker: Deployment) -> None:
    env = {**cli_env(own_broker), "SAFEPASSAGE_BROKER_SECURITY": "sasl_ssl"}

    result = CliRunner().invoke(main, ["kafka", "start"], env=env)

    assert result.exit_code == 1
    assert "runs with security=plaintext, but the settings ask for sasl_ssl" in result.stderr
    assert "Traceback" not in result.output


def test_status_reports_the_node_answering(own_broker: Deployment) -> None:
    result = CliRunner().invoke(main, ["kafka", "status"], env=cli_env(own_broker))

    assert result.exit_code == 0, result.output
    assert "yes" in result.output
    assert str(own_broker.nodes[0].pid()) in result.output


def test_stale_pid_file_is_ignored_and_start_still_works(own_broker: Deployment) -> None:
    node = own_broker.nodes[0]
    own_broker.stop()
    # A PID that is alive but is not a Kafka node (this very test process).
    node.pid_file.write_text(f"{os.getpid()}\n")

    assert own_broker.stop() == []  # never signals the unrelated process
    assert not node.pid_file.exists()
    node.pid_file.write_text(f"{os.getpid()}\n")
    results = own_broker.start()

    assert results[0].already_running is False
    assert node.answers()


def test_acknowledged_records_survive_kill_9(own_broker: Deployment, tmp_path: Path) -> None:
    settings = KafkaSettings(bootstrap_servers=own_broker.bootstrap)
    topic = "durability-kill9"
    create_topic(own_broker.bootstrap, topic, 3, 1)
    assert produce_numbered(settings, topic) == KEYS * PER_KEY

    killed = own_broker.kill(1)
    assert killed is not None
    assert not own_broker.nodes[0].is_running()
    own_broker.start()

    records = consume_all(settings, topic, KEYS * PER_KEY)
    assert len(records) == KEYS * PER_KEY
    assert {(k, v) for k, v, _ in records} == {
        (f"survivor-{k}".encode(), str(s).encode()) for k in range(KEYS) for s in range(PER_KEY)
    }


def test_data_survives_clean_stop_and_start(own_broker: Deployment) -> None:
    settings = KafkaSettings(bootstrap_servers=own_broker.bootstrap)
    topic = "durability-restart"
    create_topic(own_broker.bootstrap, topic, 2, 1)
    produce_numbered(settings, topic)

    assert own_broker.stop() == [1]
    own_broker.start()

    assert len(consume_all(settings, topic, KEYS * PER_KEY)) == KEYS * PER_KEY
