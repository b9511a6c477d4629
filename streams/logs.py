"""structlog set-up: JSON lines by default, a readable console on a TTY.

Log lines carry identifiers as keys (topic, partition, offset, event id,
referral id, survivor pseudonym), never personal data. Standard-library
loggers (Faust, aiokafka) go through the same renderer: a worker writes one format.
The one handler of a process carries :class:`~streams.quiet.RepeatThrottle`,
so a broker outage is a few lines from the client libraries, not thousands.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any, NoReturn, TextIO

import structlog
from structlog.typing import Processor

from streams.quiet import RepeatThrottle
from streams.settings import LogFormat

__all__ = [
    "bind_record",
    "configure_logging",
    "dict_config",
    "exit_at_once",
    "get_logger",
    "processor_formatter",
]


def _renderer(fmt: LogFormat, stream: TextIO) -> Processor:
    use_console = fmt is LogFormat.CONSOLE or (fmt is LogFormat.AUTO and stream.isatty())
    if use_console:
        return structlog.dev.ConsoleRenderer(colors=stream.isatty())
    return structlog.processors.JSONRenderer()


def _shared() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]


def processor_formatter(
    fmt: LogFormat | str = LogFormat.AUTO, stream: TextIO | None = None
) -> logging.Formatter:
    """A logging formatter rendering standard-library and structlog records alike."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *_shared()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _renderer(LogFormat(fmt), stream or sys.stderr),
        ],
    )


def dict_config(fmt: LogFormat, level: str) -> dict[str, Any]:
    """``logging.config.dictConfig`` form of the same set-up, for Faust's worker.

    Faust (mode) replaces the root logger's handlers when a worker starts;
    handing it this configuration keeps one format for every line.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": {"()": processor_formatter, "fmt": fmt.value}},
        "filters": {"client_repeats": {"()": RepeatThrottle}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "structlog",
                "filters": ["client_repeats"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }


def configure_logging(
    fmt: LogFormat = LogFormat.AUTO, level: str = "INFO", stream: TextIO | None = None
) -> None:
    """Configure structlog and the standard library's root logger once per process."""
    stream = stream or sys.stderr
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level {level!r}")
    structlog.configure(
        processors=[
            *_shared(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(processor_formatter(fmt, stream))
    handler.addFilter(RepeatThrottle())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger, optionally with keys bound from the start."""
    return structlog.get_logger(name, **initial)


def exit_at_once(code: int) -> NoReturn:
    """Flush the log handlers and end the process now (``os._exit``), with no graceful stop.

    Faust's graceful stop commits the event an agent is inside, unprocessed.
    """
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(ValueError, OSError):  # a closed stream must not stop the exit
            handler.flush()
    os._exit(code)


@contextlib.contextmanager
def bind_record(*, topic: str, partition: int, offset: int, **ids: str) -> Iterator[None]:
    """Bind a Kafka record's coordinates and ids (``event_id``...) to every log line within."""
    coordinates: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset}
    with structlog.contextvars.bound_contextvars(**coordinates, **ids):
        yield
