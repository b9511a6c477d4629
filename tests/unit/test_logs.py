"""structlog set-up: JSON lines with record coordinates as keys."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest

from streams.logs import bind_record, configure_logging, dict_config, get_logger
from streams.settings import LogFormat


def test_json_lines_carry_bound_record_coordinates() -> None:
    stream = io.StringIO()
    configure_logging(LogFormat.JSON, "INFO", stream=stream)

    with bind_record(topic="safepassage.intake.v1", partition=3, offset=42, event_id="ev-1"):
        get_logger("test").info("routed", referral_id="r-9")
    get_logger("test").info("after")

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "routed"
    assert first["topic"] == "safepassage.intake.v1"
    assert first["partition"] == 3
    assert first["offset"] == 42
    assert first["event_id"] == "ev-1"
    assert first["referral_id"] == "r-9"
    assert first["level"] == "info"
    assert "timestamp" in first
    assert "topic" not in second  # bound only inside the block


def test_standard_library_loggers_are_rendered_the_same_way() -> None:
    stream = io.StringIO()
    configure_logging(LogFormat.JSON, "WARNING", stream=stream)

    logging.getLogger("aiokafka.consumer").warning("rebalance in %s", "group-1")
    logging.getLogger("aiokafka.consumer").info("filtered out")

    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "rebalance in group-1"
    assert record["logger"] == "aiokafka.consumer"


def test_console_renderer_is_readable_text() -> None:
    stream = io.StringIO()
    configure_logging(LogFormat.CONSOLE, "INFO", stream=stream)
    get_logger("test").info("hello", topic="t")
    text = stream.getvalue()
    assert "hello" in text
    assert "topic" in text
    assert not text.lstrip().startswith("{")


def test_dict_config_gives_faust_the_same_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(dict_config(LogFormat.JSON, "INFO"))
    logging.getLogger("faust.worker").info("Ready")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "Ready"
    assert record["logger"] == "faust.worker"
