"""Delivering one record to its provider, or giving it up safely.

:class:`RecordSender` turns a :class:`~connectors.delivery.jobs.Job` into
signed POSTs, retried by the policy of :mod:`connectors.delivery.retry`
until a 2xx, a final status or the horizon. A record given up goes to the
dead-letter topic and is reported to the router (``referral.undelivered``),
each waited for until Kafka acknowledges it, because only then may the
consumer loop commit past the record. Every wait here (backoff, request
slot, broker ack) belongs to one provider's worker, so a slow or dead
provider holds up only itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, wait_random_exponential

from connectors.delivery import retry as policy
from connectors.delivery.jobs import DeliveryStats, Job
from connectors.delivery.settings import ProviderEndpoint, WebhookSettings
from connectors.delivery.undelivered import report_for, report_id
from connectors.exceptions import (
    WebhookDeliveryError,
    WebhookRejectedError,
    WebhookUndeliverableError,
)
from connectors.webhooks import WebhookEvent, delivery_id, payload, signed_headers
from schemas.models import ReferralCancelled, ReferralOffered
from streams.codec import Codec
from streams.deadletter import DeadLetter, describe_error
from streams.logs import get_logger
from streams.metrics import DEAD_LETTERS
from streams.producing import AckedProducer, OutRecord, ProduceError
from streams.tracing import TRACEPARENT, span

__all__ = ["RecordSender"]

log = get_logger(__name__)

_DRAIN_LIMIT_BYTES = 64 * 1024
_REPUBLISH_BACKOFF_S = (1.0, 30.0)


@dataclass(frozen=True, kw_only=True)
class RecordSender:
    """Delivers a record to its provider, or gives it up safely.

    Built by :class:`~connectors.delivery.connector.WebhookDelivery` (whose
    clocks and ``sleep`` it uses) once per run, when its HTTP client and Kafka
    producer exist, and shared by every provider's worker: it keeps no
    per-record state.
    """

    settings: WebhookSettings
    providers: Mapping[UUID, ProviderEndpoint]
    codec: Codec
    client: httpx.AsyncClient
    producer: AckedProducer
    slots: asyncio.Semaphore
    stats: DeliveryStats
    deadletter_topic: str
    report_topic: str
    clock: Callable[[], float]
    wall: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]

    # ----------------------------------------------------------------- delivering

    async def handle(self, job: Job) -> None:
        """Deliver one record, or dead-letter (and report) it: either way it is finished."""
        if job.decoded is None or not isinstance(
            job.decoded.event, ReferralOffered | ReferralCancelled
        ):
            await self._dead_letter(job, job.error or RuntimeError("no event"))
            return
        event = job.decoded.event
        envelope = job.decoded.envelope
        delivery = delivery_id(envelope.source, envelope.id)
        with (
            structlog.contextvars.bound_contextvars(event_id=envelope.id, delivery_id=delivery),
            span("webhook.deliver", job.decoded.traceparent, event_type=event.event_type) as trace,
        ):
            failure: BaseException | None
            try:
                body = payload(event, delivery)
                failure = await self._deliver(job, body, delivery, event, trace)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not lose the record: give it up instead
                log.error(
                    "webhook.crashed", error_class=type(exc).__name__, error=describe_error(exc)
                )
                failure = exc
            if failure is None:
                return
            await self._dead_letter(job, failure)
            await self._report(job, event, delivery, failure)

    async def _deliver(
        self, job: Job, body: bytes, delivery: str, event: WebhookEvent, trace: str
    ) -> WebhookDeliveryError | None:
        """Attempt until delivered, refused, or out of time; None when delivered."""
        endpoint = self.providers[job.provider_id]
        attempts = 0
        started = self.clock()

        async def attempt() -> policy.AttemptResult:
            nonlocal attempts
            attempts += 1
            self.stats.attempts += 1
            async with self.slots:
                return await self._post(endpoint, body, delivery, event.event_type, trace)

        jitter = wait_random_exponential(
            multiplier=self.settings.initial_backoff_s, max=self.settings.max_backoff_s
        )

        def wait(state: RetryCallState) -> float:
            last = _result(state)
            return policy.next_delay(jitter(state), last.retry_after, job.deadline - self.clock())

        def stop(state: RetryCallState) -> bool:
            return policy.should_stop(job.deadline - self.clock(), _result(state).retry_after)

        def before_sleep(state: RetryCallState) -> None:
            pause = state.next_action.sleep if state.next_action else 0.0
            log.info(
                "webhook.retry",
                attempt=state.attempt_number,
                outcome=_result(state).describe(),
                retry_in_s=round(pause, 3),
            )

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_result(lambda result: result.verdict is policy.Verdict.RETRY),
            before_sleep=before_sleep,
            retry_error_callback=_result,
            sleep=self.sleep,
        )
        last: policy.AttemptResult = await retrying(attempt)
        elapsed = round(self.clock() - started, 3)
        if last.verdict is policy.Verdict.DELIVERED:
            self.stats.delivered += 1
            log.info("webhook.delivered", attempts=attempts, status=last.status, elapsed_s=elapsed)
            return None
        if last.verdict is policy.Verdict.GIVE_UP:
            return WebhookRejectedError(
                f"the provider answered {last.describe()} on attempt {attempts}; not retried"
            )
        return WebhookUndeliverableError(
            f"no 2xx within the horizon of {self.settings.max_elapsed_s:g} s: {attempts} "
            f"attempt(s) over {elapsed:g} s, the last {last.describe()}"
        )

    async def _post(
        self, endpoint: ProviderEndpoint, body: bytes, delivery: str, event_type: str, trace: str
    ) -> policy.AttemptResult:
        """One signed POST; the status (and Retry-After) decide, the response body is ignored."""
        client = self.client
        headers = signed_headers(
            endpoint.secrets,
            body,
            delivery=delivery,
            event_type=event_type,
            timestamp=int(self.wall()),
        )
        headers[TRACEPARENT] = trace  # W3C Trace Context: the provider may join the trace
        request = client.build_request(
            "POST",
            str(endpoint.url),
            content=body,
            headers=headers,
            timeout=endpoint.timeout_s or self.settings.timeout_s,
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            return policy.AttemptResult(policy.verdict_for_error(exc), error=type(exc).__name__)
        try:
            await _drain(response)
        finally:
            await response.aclose()
        return policy.AttemptResult(
            policy.verdict_for_status(response.status_code),
            status=response.status_code,
            retry_after=policy.parse_retry_after(response.headers.get("Retry-After"), self.wall()),
        )

    # ----------------------------------------------------------------- giving up

    async def _dead_letter(self, job: Job, error: BaseException) -> None:
        """The original record, untouched, with the project's reason headers."""
        letter = DeadLetter.of(
            key=job.key,
            value=job.value,
            headers=job.headers,
            error=error,
            topic=job.partition.topic,
            partition=job.partition.partition,
            offset=job.offset,
        )
        await self._publish_until_acked(
            OutRecord(self.deadletter_topic, letter.key, letter.value, tuple(letter.headers))
        )
        self.stats.dead_lettered += 1
        DEAD_LETTERS.labels(reason=type(error).__name__).inc()
        log.warning(
            "webhook.dead_lettered", error_class=type(error).__name__, error=describe_error(error)
        )

    async def _report(
        self, job: Job, event: WebhookEvent, delivery: str, failure: BaseException
    ) -> None:
        """Tell the router (which decides what follows) the provider never got this event."""
        report = report_for(
            event,
            provider_id=job.provider_id,
            failure=failure,
            now=datetime.fromtimestamp(self.wall(), UTC),
        )
        record = self.codec.encode(report, self.report_topic, event_id=report_id(delivery))
        await self._publish_until_acked(
            OutRecord(record.topic, record.key, record.value, tuple(record.headers))
        )
        self.stats.reported += 1
        log.warning(
            "webhook.reported_undelivered",
            reason=report.reason.value,
            report_id=report_id(delivery),
        )

    async def _publish_until_acked(self, record: OutRecord) -> None:
        """Publish and wait for the broker's ack; while Kafka refuses, keep trying.

        The source offset must not be committed before this record is safe,
        and there is nothing better to do with it meanwhile.
        """
        pause, cap = _REPUBLISH_BACKOFF_S
        while True:
            try:
                await self.producer.send(record)
                return
            except ProduceError as exc:
                log.warning("webhooks.publish_failed", target=record.topic, error=exc.error.name())
                await self.sleep(pause)
                pause = min(cap, pause * 2)


def _result(state: RetryCallState) -> policy.AttemptResult:
    """The result of the attempt just made (attempts return results, they do not raise)."""
    assert state.outcome is not None  # noqa: S101 - tenacity sets it before calling back
    result: policy.AttemptResult = state.outcome.result()
    return result


async def _drain(response: httpx.Response) -> None:
    """Read (and drop) a little of the answer so the connection can be reused; stop early."""
    read = 0
    try:
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read > _DRAIN_LIMIT_BYTES:
                return
    except httpx.HTTPError:
        return  # the status line is what counts
