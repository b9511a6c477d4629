"""A broker outage is a few lines from the Kafka clients, not thousands (streams/quiet.py).

Before the throttle, with the broker stopped, a router worker wrote ~4,700
lines in 30 s and ``escalations follow`` ~580 raw ``%3|...|FAIL|`` lines
on stderr. These tests hold the two halves of the fix: every librdkafka
client of the factory logs through a Python logger (checked on a real
client against a closed port), and the handler's filter lets one line of
a kind through per interval.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import socket
import time

import pytest
from confluent_kafka import Consumer

from streams.clients import consumer_config, producer_config
from streams.logs import configure_logging, dict_config
from streams.quiet import LIBRDKAFKA_LOG, RepeatThrottle
from streams.settings import KafkaSettings, LogFormat


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _record(
    name: str, message: str, *args: object, level: int = logging.ERROR
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_librdkafka_config_of_the_factory_logs_through_python_logging() -> None:
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    for config in (producer_config(settings), consumer_config(settings, "g")):
        assert config["logger"] is LIBRDKAFKA_LOG
        assert config["log.connection.close"] is False
    other = logging.getLogger("tests.own")
    assert producer_config(settings, logger=other)["logger"] is other  # an override still wins


def test_a_real_consumer_against_a_closed_port_prints_nothing_raw_and_is_throttled(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """librdkafka retries a refused connect every ~50 ms; it must not reach stderr raw."""
    handler = _Collect()
    seen = handler.records
    handler.addFilter(RepeatThrottle(interval_s=60.0))
    LIBRDKAFKA_LOG.addHandler(handler)
    LIBRDKAFKA_LOG.setLevel(logging.DEBUG)
    consumer = Consumer(
        consumer_config(
            KafkaSettings(bootstrap_servers=f"127.0.0.1:{_closed_port()}"),
            "quiet-test",
            **{"reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 10},
        )
    )
    try:
        consumer.subscribe(["quiet-test"])
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            consumer.poll(0.1)  # logs are served from poll
    finally:
        consumer.close()
        LIBRDKAFKA_LOG.removeHandler(handler)
        LIBRDKAFKA_LOG.setLevel(logging.NOTSET)
    assert "%3|" not in capfd.readouterr().err
    failures = [r for r in seen if "Connect to" in r.getMessage()]
    assert 1 <= len(failures) <= 2  # one line per kind (the bootstrap and a coordinator thread)


def test_repeats_pass_once_per_interval_with_the_count_of_those_dropped() -> None:
    clock = _Clock()
    throttle = RepeatThrottle(interval_s=30.0, clock=clock)
    template = "Unable connect to node with id %s: %s"
    passed = [
        throttle.filter(_record("aiokafka", template, 1, f"after {i} ms")) for i in range(100)
    ]
    assert passed == [True] + [False] * 99
    clock.now = 30.0
    record = _record("aiokafka.conn", "Unable connect to node with id %s: %s", 1, "x")
    assert throttle.filter(record)  # another logger: another kind
    again = _record("aiokafka", template, 1, "after 5 ms")
    assert throttle.filter(again)
    assert getattr(again, "suppressed", None) == 99
    assert not throttle.filter(_record("aiokafka", template, 1, "after 6 ms"))


def test_a_new_kind_of_problem_comes_out_at_once() -> None:
    throttle = RepeatThrottle(clock=_Clock())
    assert throttle.filter(_record("aiokafka", "Unable connect to node"))
    assert throttle.filter(_record("aiokafka", "SASL authentication failed"))


def test_our_own_events_and_info_lines_are_never_throttled() -> None:
    throttle = RepeatThrottle(clock=_Clock())
    for _ in range(5):
        assert throttle.filter(_record("connectors.relay", "relay.dead_letter"))
        assert throttle.filter(_record("aiokafka", "joined group", level=logging.INFO))
        assert throttle.filter(_record("aiokafkaesque", "lookalike name"))


def test_the_process_handler_and_fausts_logging_config_carry_the_throttle() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(LogFormat.JSON, "INFO", stream)
        for _ in range(50):
            logging.getLogger("aiokafka").error("Unable connect to node with id %s", 1)
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert len(lines) == 1
        config = dict_config(LogFormat.JSON, "INFO")
        assert config["handlers"]["default"]["filters"] == ["client_repeats"]
        logging.config.dictConfig(config)
        assert any(isinstance(f, RepeatThrottle) for f in root.handlers[0].filters)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
