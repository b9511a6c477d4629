"""Kafka client libraries' repeated warnings, once per kind and interval instead of a flood.

While a broker is down, librdkafka logs a failed connect every ~50 ms per
client (``%3|...|FAIL|...`` straight onto stderr, unless it is given a
Python logger), and aiokafka and Faust log their connect, metadata, fetch,
produce and coordinator failures as errors on every retry: a router worker
wrote ~4,700 lines in 30 s, ``escalations follow`` ~580 (measured, see
docs/running.md). Those lines hide the one that matters and fill disks.

:class:`RepeatThrottle` lets the first line of a kind through, drops the
repeats for ``interval_s``, and then lets the next one through carrying
``suppressed=N`` (how many it dropped meanwhile). A *kind* is the logger,
the level and the message with its digits masked, so "node 1 failed after
3ms" and "node 1 failed after 7ms" are one kind, while a different message
(a real new problem) still comes out at once. Only the client libraries'
loggers at WARNING and above are throttled: our own events carry ids an
operator needs line by line.

Every librdkafka client built by :mod:`streams.clients` logs through
:data:`LIBRDKAFKA_LOG`; :mod:`streams.logs` puts the throttle on the one
handler of each process, where Faust's and aiokafka's records arrive too.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["CLIENT_LOGGERS", "LIBRDKAFKA_LOG", "RepeatThrottle"]

LIBRDKAFKA_LOG = logging.getLogger("streams.librdkafka")
"""Where librdkafka's own lines go (confluent-kafka's ``logger`` setting), not raw stderr."""

CLIENT_LOGGERS = ("aiokafka", "faust", "mode", "kafka", LIBRDKAFKA_LOG.name)
"""Loggers (and their children) of the Kafka client libraries whose repeats are throttled."""

_DIGITS = re.compile(r"\d+")
_MAX_KINDS = 1024
"""Kinds remembered at most; past it the memory starts afresh (many distinct kinds are rare)."""


@dataclass
class _Seen:
    at: float
    suppressed: int = 0


class RepeatThrottle(logging.Filter):
    """A logging filter: one line per kind of client warning every ``interval_s`` seconds."""

    def __init__(
        self,
        interval_s: float = 30.0,
        loggers: Iterable[str] = CLIENT_LOGGERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._loggers = tuple(loggers)
        self._clock = clock
        self._seen: dict[tuple[str, int, str], _Seen] = {}

    def _throttled(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        return any(
            record.name == name or record.name.startswith(name + ".") for name in self._loggers
        )

    def filter(self, record: logging.LogRecord) -> bool:
        """True to let ``record`` through; a passing repeat carries ``suppressed``."""
        if not self._throttled(record):
            return True
        try:
            text = record.getMessage()
        except (TypeError, ValueError):  # a library's bad format string must not stop logging
            text = str(record.msg)
        kind = (record.name, record.levelno, _DIGITS.sub("#", text))
        now = self._clock()
        seen = self._seen.get(kind)
        if seen is not None and now - seen.at < self._interval_s:
            seen.suppressed += 1
            return False
        if seen is not None and seen.suppressed:
            record.suppressed = seen.suppressed
        if len(self._seen) >= _MAX_KINDS:
            self._seen.clear()
        self._seen[kind] = _Seen(now)
        return True
