"""Worker supervision on the real broker: the stall watchdog, and no worker left unsupervised."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.clients import consumer_config, producer_config
from streams.provisioning import provision
from streams.settings import KafkaSettings
from streams.stall import EXIT_STALLED
from tests.integration.conftest import REPO, create_topic
from tests.integration.waits import wait_caught_up, wait_until
from tests.integration.workers import start_worker

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

        hung: list[tuple[int, int]] = []

        def delivered(err: Any, msg: Any) -> None:
            if err is None and msg.value() == b"hang":
                hung.append((msg.partition(), msg.offset()))

        producer.produce(topic, key=b"7", value=b"hang", on_delivery=delivered)
        producer.produce(topic, key=b"7", value=b"ok")  # waits behind the stuck one
        assert producer.flush(30) == 0
        code = worker.wait(120)
        text = log.read_text()
        assert code == EXIT_STALLED, text[-3000:]
        assert '"event": "worker.partition_stalled"' in text
        assert f'"topic": "{topic}"' in text
        # Stopping must not commit past the record the agent never finished.
        ((partition, offset),) = hung
        consumer = Consumer(consumer_config(settings, group_id=f"stall-test-{namespace}"))
        try:
            (committed,) = consumer.committed([TopicPartition(topic, partition)], timeout=30)
        finally:
            consumer.close()
        assert committed.offset <= offset, (committed.offset, offset)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) is not running.
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def test_a_worker_whose_supervisor_is_killed_stops_instead_of_running_on(
    bootstrap: str, tmp_path: Path
) -> None:
    """SIGKILL to `safepassage worker` leaves no unsupervised Faust worker behind."""
    settings = KafkaSettings(
        bootstrap_servers=bootstrap, topic_namespace=f"orphan-{uuid.uuid4().hex[:8]}"
    )
    provision(settings)
    worker = start_worker(bootstrap, settings.topic_namespace, tmp_path / "w")
    try:
        child = wait_until(
            lambda: next(iter(_children(worker.process.pid)), None), "the Faust child"
        )
        wait_until(lambda: "Worker]: Ready" in worker.log.read_text(), "the child ready")
        os.kill(worker.process.pid, signal.SIGKILL)  # the supervisor only
        worker.process.wait(10)
        wait_until(lambda: not _alive(child), "the orphaned child to stop", timeout_s=90)
        assert '"event": "worker.orphaned"' in worker.log.read_text(), worker.log_tail()
    finally:
        worker.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)  # the child too, if the test failed
