"""Decode, handle, or dead-letter: the one loop every SafePassage agent runs.

When decoding or handling a record fails, the failure policy
(:func:`streams.deadletter.default_policy`) decides: dead-letter it and go
on, retry it, or stop (dead-letter it and raise, so the agent crashes
instead of dead-lettering every following record the same way). No record
is ever dropped.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from streams.codec import Codec, Decoded
from streams.deadletter import (
    Action,
    DeadLetter,
    FailurePolicy,
    default_policy,
    describe_error,
)
from streams.logs import bind_record, exit_at_once, get_logger
from streams.metrics import DEAD_LETTERS, EVENTS_IN

__all__ = [
    "EXIT_CRASHED",
    "STOP_GRACE_S",
    "DeadLetterSink",
    "FaustDeadLetterSink",
    "Handler",
    "RawHandler",
    "process_records",
    "stop_app_on_error",
]

log = get_logger(__name__)

Handler = Callable[[Decoded], Awaitable[None]]
"""Applies one decoded record; raising means the record failed."""

RawHandler = Callable[[Any], Awaitable[None]]
"""Applies one record of an internal topic that is not an event (no codec); raising fails it."""


class DeadLetterSink(Protocol):
    """Where dead letters go; returns only once the broker acknowledged."""

    async def publish(self, letter: DeadLetter) -> None: ...


class FaustDeadLetterSink:
    """Dead letters through the Faust app's producer, to a raw topic."""

    def __init__(self, topic: Any) -> None:
        self._topic = topic

    async def publish(self, letter: DeadLetter) -> None:
        pending = await self._topic.send(key=letter.key, value=letter.value, headers=letter.headers)
        await pending  # acked before the source offset may be committed


async def process_records(
    stream: Any,
    codec: Codec,
    handler: Handler,
    sink: DeadLetterSink,
    *,
    policy: FailurePolicy = default_policy,
    retry_delay_s: float = 1.0,
    raw: Mapping[str, RawHandler] | None = None,
    before: Callable[[Any], None] | None = None,
) -> None:
    """Run ``handler`` on every record of a raw Faust stream; dead-letter failures.

    Records of a topic named in ``raw`` skip the codec and go to that handler
    (internal records such as clock ticks). ``before`` sees each record first
    (:func:`streams.faust_offsets.hole_guard`). Raises the handler's error when
    the policy says STOP: run it under :func:`stop_app_on_error`.
    """
    raw_handlers = raw or {}

    async def apply(message: Any) -> None:
        raw_handler = raw_handlers.get(message.topic)
        if raw_handler is not None:
            await raw_handler(message)
            return
        try:
            decoded = codec.decode(
                message.value, message.headers, topic=message.topic, key=message.key
            )
        except Exception:
            EVENTS_IN.labels(type="undecodable").inc()
            raise
        EVENTS_IN.labels(type=decoded.event.event_type).inc()
        await handler(decoded)

    async for event in stream.events():
        message = event.message
        with bind_record(topic=message.topic, partition=message.partition, offset=message.offset):
            if before is not None:
                before(message)
            await _process_one(message, apply, sink, policy, retry_delay_s)


async def _process_one(
    message: Any, apply: RawHandler, sink: DeadLetterSink, policy: FailurePolicy, delay_s: float
) -> None:
    while True:
        try:
            await apply(message)
            return
        except Exception as exc:  # not CancelledError, a BaseException
            action = policy(exc)
            why = {"error_class": type(exc).__name__, "error": describe_error(exc)}
            if action is Action.RETRY:
                log.warning("record.retry", **why)
                await asyncio.sleep(delay_s)
                continue
            letter = DeadLetter.of(
                key=message.key,
                value=message.value,
                headers=message.headers,
                error=exc,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )
            await sink.publish(letter)
            DEAD_LETTERS.labels(reason=type(exc).__name__).inc()
            if action is Action.STOP:
                log.error("record.stopped", **why)
                raise
            log.warning("record.dead_lettered", **why)
            return


EXIT_CRASHED = 70
"""Exit code of a worker whose graceful stop after an error did not end in time (EX_SOFTWARE)."""

STOP_GRACE_S = 20.0
"""How long a crashed worker's graceful stop may take before the process ends at once."""


async def stop_app_on_error(
    app: Any,
    work: Awaitable[None],
    *,
    grace_s: float = STOP_GRACE_S,
    hard_exit: Callable[[int], None] = exit_at_once,
) -> None:
    """Run an agent's body; if it raises, crash the app (the worker stops) and wait.

    Not mode's ``CrashingSupervisor``: Faust cancels every agent at each
    rebalance and counts on the supervisor to start it again, so that one
    would stop the worker at every rebalance. A rebalance's ``CancelledError``
    is no ``Exception``: only an error stops the worker.

    Faust's graceful stop can hang (a consumer that never leaves its group, a
    service that never finishes stopping), and a worker that neither runs nor
    exits holds its partitions hostage. So the stop is bounded: a daemon
    thread, which a stuck event loop cannot hold back, ends the process with
    :data:`EXIT_CRASHED` after ``grace_s``. The failing record is already
    dead-lettered (acknowledged) when the error reaches here; if its offset was
    not committed, the next start sees it again and stops the same way.
    """
    try:
        await work
    except Exception as exc:
        log.error("agent.stopping_worker", error_class=type(exc).__name__, grace_s=grace_s)
        timer = threading.Timer(grace_s, _exit_late, args=(hard_exit,))
        timer.daemon = True
        timer.start()
        await app.crash(exc)
        await asyncio.Event().wait()  # cancelled when the worker stops


def _exit_late(hard_exit: Callable[[int], None]) -> None:
    log.error("agent.stop_timed_out", exit_code=EXIT_CRASHED)
    hard_exit(EXIT_CRASHED)
