"""When the SDKs' transports try again: one retry policy for Kafka and HTTP alike.

Which failures are transient is each transport's business (it raises
:class:`~connectors.exceptions.SdkTransientError` for them); when and how
often to try again is this module's, once for both. Every attempt carries the
same CloudEvents id, so one that arrived although its answer was lost is a
copy the platform drops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from connectors.exceptions import SdkRetriesExhaustedError, SdkTransientError
from streams.logs import get_logger

__all__ = ["RetryPolicy"]

log = get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again after a transient failure, and for how long.

    ``sleep`` is injectable so tests can record the waits instead of
    sleeping (set ``initial_wait_s=0`` for zero backoff). A ``Retry-After``
    longer than ``max_retry_after_s`` ends the retries at once: waiting
    that long inside a call would look like a hang, and the caller can
    schedule a later attempt under the same id.
    """

    max_attempts: int = 6
    max_elapsed_s: float = 60.0
    initial_wait_s: float = 0.2
    max_wait_s: float = 10.0
    max_retry_after_s: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def __post_init__(self) -> None:
        """Nonsense bounds would retry forever or never."""
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.max_elapsed_s, self.initial_wait_s, self.max_wait_s) < 0:
            raise ValueError("retry times must not be negative")

    def wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: jittered backoff, at least the server's Retry-After."""
        jittered = wait_random_exponential(multiplier=self.initial_wait_s, max=self.max_wait_s)
        wait = float(jittered(state))
        retry_after = _retry_after_of(state)
        return wait if retry_after is None else max(wait, retry_after)

    def stop(self, state: RetryCallState) -> bool:
        """Whether to give up: attempts or time used up, or a longer Retry-After than allowed."""
        used_up = stop_after_attempt(self.max_attempts) | stop_before_delay(self.max_elapsed_s)
        retry_after = _retry_after_of(state)
        return used_up(state) or (retry_after is not None and retry_after > self.max_retry_after_s)

    def run(self, operation: Callable[[], T], *, event_ids: tuple[str, ...]) -> T:
        """Run ``operation``, retrying :class:`SdkTransientError` only.

        Anything else (a rejection, a bug) propagates from the first attempt.
        When the policy gives up, :class:`SdkRetriesExhaustedError` is raised
        from the last transient error.
        """
        retrying = Retrying(
            retry=retry_if_exception_type(SdkTransientError),
            stop=self.stop,
            wait=self.wait,
            sleep=self.sleep,
            before_sleep=_log_retry,
        )
        try:
            return retrying(operation)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            attempts = exc.last_attempt.attempt_number
            if isinstance(last, SdkTransientError):
                event_ids = last.event_ids or event_ids
            raise SdkRetriesExhaustedError(
                f"gave up after {attempts} attempt(s): {last}",
                event_ids=event_ids,
                attempts=attempts,
            ) from last


def _retry_after_of(state: RetryCallState) -> float | None:
    outcome = state.outcome
    if outcome is None or not outcome.failed:
        return None
    error = outcome.exception()
    return error.retry_after if isinstance(error, SdkTransientError) else None


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning(
        "sdk.publish.retry",
        attempt=state.attempt_number,
        wait_s=round(wait, 3),
        error=type(error).__name__,
        status=getattr(error, "status", None),
        event_ids=list(getattr(error, "event_ids", ())),
    )
