"""The stall watchdog on the real broker: a healthy worker runs on, a stuck one exits 75."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from streams.clients import producer_config
from streams.settings import KafkaSettings
from streams.stall import EXIT_STALLED
from tests.integration.conftest import REPO, create_topic
from tests.integration.waits import wait_caught_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT_S = 6.0


def test_a_caught_up_worker_runs_on_and_a_stuck_agent_stops_the_worker_with_75(
    bootstrap: str, tmp_path: Path
) -> None:
    namespace = f"stall-{uuid.uuid4().hex[:8]}"
    settings = KafkaSettings(bootstrap_servers=bootstrap, topic_namespace=namespace)
    topic = create_topic(bootstrap, f"{namespace}.stall-input", 3)
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "SAFEPASSAGE_BOOTSTRAP_SERVERS": bootstrap,
        "SAFEPASSAGE_TOPIC_NAMESPACE": namespace,
        "SAFEPASSAGE_LOG_FORMAT": "json",
        "TEST_STALL_TIMEOUT_S": str(TIMEOUT_S),
    }
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.apps.stall_worker"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        producer = Producer(producer_config(settings))
        for i in range(30):
            producer.produce(topic, key=str(i).encode(), value=b"ok")
        assert producer.flush(30) == 0
        wait_caught_up(settings, f"stall-test-{namespace}", [topic], on_timeout=log.read_text)
        # Caught up is not stalled: the worker outlives several watchdog timeouts.
        time.sleep(3 * TIMEOUT_S)
        assert worker.poll() is None, log.read_text()[-3000:]

        producer.produce(topic, key=b"7", value=b"hang")
        producer.produce(topic, key=b"7", value=b"ok")  # waits behind the stuck one
        assert producer.flush(30) == 0
        code = worker.wait(120)
        text = log.read_text()
        assert code == EXIT_STALLED, text[-3000:]
        assert '"event": "worker.partition_stalled"' in text
        assert f'"topic": "{topic}"' in text
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
