"""Decode, handle, or dead-letter: the one loop every SafePassage agent runs.

Each record of a raw Faust stream is decoded with the codec (envelope,
typed event, topic and key checks) and handed to a handler. If decoding or
handling fails, the failure policy (:func:`streams.deadletter.default_policy`)
decides: dead-letter the original record with the reason and go on, retry
it (transient failures), or stop (a bug or wrong configuration of ours: the
record is dead-lettered and the error raised, so the agent crashes instead
of dead-lettering every following record the same way). No record is ever
dropped.
"""

from __future__ import annotations

import asyncio
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
from streams.logs import bind_record, get_logger

__all__ = [
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
) -> None:
    """Run ``handler`` on every record of a raw Faust stream; dead-letter failures.

    Records of a topic named in ``raw`` skip the codec and go to that
    handler instead (internal records such as clock ticks), with the same
    failure policy. Raises the handler's error when the policy says
    :attr:`~streams.deadletter.Action.STOP` (after dead-lettering the
    record): run it under :func:`stop_app_on_error`, so the worker stops.
    """
    raw = raw or {}
    async for event in stream.events():
        message = event.message
        with bind_record(topic=message.topic, partition=message.partition, offset=message.offset):
            await _process_one(
                message,
                codec,
                handler=handler,
                raw=raw.get(message.topic),
                sink=sink,
                policy=policy,
                retry_delay_s=retry_delay_s,
            )


async def _process_one(
    message: Any,
    codec: Codec,
    *,
    handler: Handler,
    raw: RawHandler | None,
    sink: DeadLetterSink,
    policy: FailurePolicy,
    retry_delay_s: float,
) -> None:
    while True:
        try:
            if raw is not None:
                await raw(message)
                return
            decoded = codec.decode(
                message.value, message.headers, topic=message.topic, key=message.key
            )
            await handler(decoded)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            action = policy(exc)
            if action is Action.RETRY:
                log.warning(
                    "record.retry", error_class=type(exc).__name__, error=describe_error(exc)
                )
                await asyncio.sleep(retry_delay_s)
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
            if action is Action.STOP:
                log.error(
                    "record.stopped", error_class=type(exc).__name__, error=describe_error(exc)
                )
                raise
            log.warning(
                "record.dead_lettered", error_class=type(exc).__name__, error=describe_error(exc)
            )
            return


async def stop_app_on_error(app: Any, work: Awaitable[None]) -> None:
    """Run an agent's body; if it raises, crash the app (the worker stops) and wait.

    Why not mode's ``CrashingSupervisor``: Faust cancels every agent at each
    rebalance and counts on the supervisor to start it again ("Restarting
    on rebalance"), so a crashing supervisor stops the worker at every
    rebalance. ``CancelledError`` is not an ``Exception``: a rebalance still
    restarts the agent, while an error (a bug of ours, the failure policy's
    STOP) stops the worker, and no record after the failed one is processed.
    """
    try:
        await work
    except Exception as exc:
        log.error("agent.stopping_worker", error_class=type(exc).__name__)
        await app.crash(exc)
        await asyncio.Event().wait()  # cancelled when the worker stops
