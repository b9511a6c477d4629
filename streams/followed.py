"""A topic's content kept in memory: replayed, served once caught up, rebuilt after a failure.

For the compacted topics a service answers from (the intake's status copy
and its data-key directory): each run replays the topic into a fresh copy
(:class:`streams.replay.ReplayReader`) and serves it from the moment it
caught up with the end offsets seen at start, since a half-read topic would
answer "unknown" for something that exists. If the reader fails (the broker
unreachable at start, the topic not provisioned yet), a new run starts after
a pause, and a copy that was caught up before keeps being served meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from streams.exceptions import StreamsError
from streams.logs import get_logger
from streams.replay import ReplayReader
from streams.settings import KafkaSettings

__all__ = ["FollowedCopy", "backoff_s"]

_log = get_logger(__name__)

C = TypeVar("C")


def backoff_s(failures: int) -> float:
    """Pause after ``failures`` failed runs: doubling to 30 s, so a down broker is not hammered."""
    return min(2.0**failures, 30.0)


class FollowedCopy(Generic[C]):
    """``empty()`` makes a copy, ``apply(copy, record)`` adds one aiokafka record to it.

    ``apply`` must not raise for a bad record (skip it, and count it in
    :attr:`skipped` through :meth:`skip`). ``name`` names the reader and the
    log events (``<name>.ready``, ``<name>.failed``, ``<name>.record_skipped``).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        *,
        name: str,
        empty: Callable[[], C],
        apply: Callable[[C, Any], None],
        retry_s: Callable[[int], float] = backoff_s,
        reader: Callable[..., ReplayReader] = ReplayReader,
    ) -> None:
        self._kafka = kafka
        self.topic = topic
        self.name = name
        self._empty = empty
        self._apply = apply
        self._retry_s = retry_s
        self._reader = reader
        self.served: C = empty()
        self._ready = False
        self._task: asyncio.Task[None] | None = None
        self.skipped = 0
        """Records that could not be read (logged by coordinates, never by content)."""

    @property
    def ready(self) -> bool:
        """Whether a copy caught up with the topic's end (as of its start) is served."""
        return self._ready

    async def start(self) -> None:
        """Start reading in the background (a lifespan may start it again after a close)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._keep_reading(), name=self.name)

    async def close(self) -> None:
        """Stop reading; what was read stays served until the next start."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def skip(self, record: Any, what: str) -> None:
        """Count and log an unreadable record by its coordinates."""
        self.skipped += 1
        _log.warning(
            f"{self.name}.record_skipped",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            unreadable=what,
        )

    async def _keep_reading(self) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await self._read_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker, the topic, a bug: read again, never crash
                failures = 0 if time.monotonic() - started > 600 else failures + 1
                pause = self._retry_s(failures)
                _log.warning(
                    f"{self.name}.failed",
                    error_class=type(exc).__name__,
                    error=str(exc) if isinstance(exc, StreamsError) else None,
                    retry_in_s=pause,
                )
                await asyncio.sleep(pause)

    async def _read_once(self) -> None:
        """One replay into a fresh copy, served from the moment it has caught up."""
        copy = self._empty()

        def caught_up() -> None:
            self.served, self._ready = copy, True
            _log.info(f"{self.name}.ready", skipped=self.skipped)

        reader = self._reader(
            self._kafka,
            (self.topic,),
            name=self.name,
            apply=lambda record: self._apply(copy, record),
            on_caught_up=caught_up,
        )
        await reader.run()
