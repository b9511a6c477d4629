"""Webhook delivery against the real broker and a real HTTP server standing in for providers.

An aiohttp server on a free port plays every provider: it checks each
request with the documented :func:`connectors.webhooks.verify` and records
what it got. Offers are produced to the referral topics with the codec, the
connector runs on the test's event loop, and dead letters and escalations
are read back from their topics.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from standardwebhooks import Webhook

from connectors.delivery import (
    WebhookDelivery,
    WebhookSettings,
    load_providers,
    report_id,
)
from connectors.exceptions import SignatureError, SignatureMismatchError
from connectors.webhooks import (
    EVENT_TYPE_HEADER,
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookEvent,
    delivery_id,
    new_secret,
    verify,
)
from schemas.models import ReferralCancelled, ReferralOffered, ReferralUndelivered
from schemas.types import (
    Actor,
    CancelReason,
    DeliveryFailure,
    ServiceCategory,
    UndeliveredEvent,
    Urgency,
)
from streams.clients import producer_config
from streams.codec import Codec
from streams.provisioning import provision
from streams.settings import KafkaSettings
from streams.topics import referral_topic
from tests.integration.conftest import free_port
from tests.integration.waits import async_wait_until, read_to_end, wait_until
from tests.unit.domain_builders import T0, uid

pytestmark = [pytest.mark.integration]

SOURCE = "/test/router"
Behaviour = Callable[[int], tuple[int, dict[str, str]]]
"""Status and extra headers a provider answers to its n-th request (1-based)."""


def always(status: int) -> Behaviour:
    return lambda _n: (status, {})


def fails_then_ok(failures: int, status: int, headers: dict[str, str] | None = None) -> Behaviour:
    return lambda n: (status, headers or {}) if n <= failures else (200, {})


# --------------------------------------------------------------------------- the provider side


@dataclass
class Received:
    provider: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int
    verified: bool


@dataclass
class Providers:
    """An aiohttp server playing every provider: ``POST /hooks/<name>``."""

    secrets: dict[str, str]
    behaviours: dict[str, Behaviour]
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        extra: dict[str, str] = {}
        try:
            verify(self.secrets[name], request.headers, body)
        except SignatureError:
            status, verified = 401, False
        else:
            count = sum(1 for r in self.received if r.provider == name and r.verified) + 1
            status, extra = self.behaviours[name](count)
            verified = True
        self.received.append(
            Received(name, dict(request.headers), body, time.monotonic(), status, verified)
        )
        return web.Response(status=status, headers=extra, text="ok")

    def of(self, name: str) -> list[Received]:
        return [r for r in self.received if r.provider == name]

    def accepted(self, name: str) -> list[Received]:
        return [r for r in self.of(name) if r.verified and r.status == 200]

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[Providers]:
        app = web.Application()
        app.router.add_post("/hooks/{name}", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        try:
            yield self
        finally:
            await runner.cleanup()


# --------------------------------------------------------------------------- helpers


def pid(name: str) -> uuid.UUID:
    return uid(f"webhook-provider-{name}")


def offer(name: str, n: int) -> ReferralOffered:
    return ReferralOffered(
        survivor_id=uid(f"survivor-{name}-{n}"),
        occurred_at=T0,
        referral_id=uid(f"referral-{name}-{n}"),
        provider_id=pid(name),
        category=ServiceCategory.HOUSING,
        urgency=Urgency.EMERGENCY,
        score=0.9,
        reasons=("language:ro",),
        attempt=1,
        deadline=T0 + timedelta(hours=1),
    )


def write_providers(
    path: Path, server: Providers, names: Sequence[str], urls: dict[str, str] | None = None
) -> Path:
    urls = urls or {}
    document = {
        "providers": {
            str(pid(name)): {
                "url": urls.get(name, server.url(name)),
                "secrets": [server.secrets[name]],
                "timeout_s": 2,
            }
            for name in names
        }
    }
    path.write_text(json.dumps(document))
    return path


@dataclass(frozen=True)
class Produced:
    event: WebhookEvent
    event_id: str
    topic: str
    partition: int
    offset: int
    value: bytes

    @property
    def delivery(self) -> str:
        return delivery_id(SOURCE, self.event_id)


ROUTER_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
"""The traceparent the records are produced with, as the router writes one on each."""


def produce(
    settings: KafkaSettings, events: Sequence[WebhookEvent], *, partition: int = -1
) -> list[Produced]:
    """Encode with the codec and produce in order; ``partition`` forces one for all."""
    codec = Codec(settings, source=SOURCE)
    producer = Producer(producer_config(settings))
    topic = referral_topic(settings, "housing")
    placed: list[tuple[int, int]] = []

    def on_delivery(err: Any, msg: Message) -> None:
        assert err is None, err
        placed.append((msg.partition() or 0, msg.offset() or 0))

    done: list[Produced] = []
    for event in events:
        event_id = str(uuid.uuid4())
        record = codec.encode(event, topic, event_id=event_id)
        producer.produce(
            topic,
            key=record.key,
            value=record.value,
            partition=partition,
            headers=[*record.headers, ("traceparent", ROUTER_TRACE.encode())],
            on_delivery=on_delivery,
        )
        assert producer.flush(30) == 0  # one at a time: offsets in the order given
        where, offset = placed[-1]
        done.append(Produced(event, event_id, topic, where, offset, record.value))
    return done


def produce_raw(settings: KafkaSettings, key: bytes, value: bytes) -> None:
    """A record that is not an event, on the housing topic."""
    producer = Producer(producer_config(settings))
    producer.produce(referral_topic(settings, "housing"), key=key, value=value)
    assert producer.flush(30) == 0


def letter_partition(letter: Message) -> int:
    return int(headers_of(letter)["deadletter.source.partition"])


def committed(settings: KafkaSettings, group: str, topic: str, partition: int) -> int:
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": group})
    try:
        [tp] = consumer.committed([TopicPartition(topic, partition)], timeout=10)
        return int(tp.offset)
    finally:
        consumer.close()


def wait_committed(settings: KafkaSettings, group: str, produced: Sequence[Produced]) -> None:
    """Until ``group`` has committed past every record of ``produced``."""
    wait_until(
        lambda: all(committed(settings, group, p.topic, p.partition) > p.offset for p in produced),
        f"{group} to commit {len(produced)} records",
    )


@asynccontextmanager
async def running(connector: WebhookDelivery) -> AsyncIterator[WebhookDelivery]:
    stop = asyncio.Event()
    task = asyncio.create_task(connector.run(stop))
    try:
        yield connector
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def webhook_settings(path: Path, **overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "file": path,
        "group_id": f"test-webhooks-{uuid.uuid4().hex[:8]}",
        "initial_backoff_s": 0.05,
        "max_backoff_s": 0.4,
        "max_elapsed_s": 60,
        "poll_interval_s": 0.02,
    }
    values.update(overrides)
    return WebhookSettings(**values)


def secrets(*names: str) -> dict[str, str]:
    return {name: new_secret() for name in names}


def headers_of(message: Message) -> dict[str, bytes]:
    raw = message.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return {
        name: value.encode() if isinstance(value, str) else value or b"" for name, value in items
    }


# --------------------------------------------------------------------------- (a)


async def test_offers_arrive_signed_and_verified(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await asyncio.to_thread(provision, kafka_settings)
    server = Providers(secrets("a", "b"), {"a": always(200), "b": always(200)})
    path = write_providers(tmp_path / "webhooks.json", server, ["a"])  # b reads Kafka itself
    cancel = ReferralCancelled(
        survivor_id=uid("survivor-a-1"),
        occurred_at=T0 + timedelta(minutes=5),
        referral_id=uid("referral-a-1"),
        reason=CancelReason.CONSENT_WITHDRAWN,
        cancelled_by=Actor.AGENCY,
        provider_id=pid("a"),
        category=ServiceCategory.HOUSING,
    )
    events: list[WebhookEvent] = [
        offer("a", 1),
        offer("b", 1),
        offer("a", 2),
        offer("a", 3),
        cancel,
    ]
    produced = await asyncio.to_thread(produce, kafka_settings, events)
    await asyncio.to_thread(produce_raw, kafka_settings, str(pid("a")).encode(), b"not an event")
    for_a = [p for p in produced if p.event.provider_id == pid("a")]
    settings = webhook_settings(path)
    connector = WebhookDelivery(kafka_settings, settings, load_providers(path))

    async with server.serving(), running(connector):
        await async_wait_until(lambda: len(server.accepted("a")) == 4, "4 deliveries to a")
        await async_wait_until(lambda: connector.stats.skipped == 1, "b's offer skipped")
        await async_wait_until(lambda: connector.stats.dead_lettered == 1, "the bad record")

    got = server.of("a")
    assert [r.status for r in got] == [200] * 4 and all(r.verified for r in got)
    assert server.of("b") == []
    assert [r.headers[ID_HEADER] for r in got] == [p.delivery for p in for_a]  # in order
    bodies = [json.loads(r.body) for r in got]
    assert [b["delivery_id"] for b in bodies] == [p.delivery for p in for_a]
    assert [b["event_type"] for b in bodies] == [r.headers[EVENT_TYPE_HEADER] for r in got]
    assert [b["data"] for b in bodies] == [p.event.model_dump(mode="json") for p in for_a]
    assert got[0].headers["Content-Type"] == "application/json"
    assert (connector.stats.delivered, connector.stats.attempts) == (4, 4)
    # W3C Trace Context: each webhook continues the offer's trace in a span of its own.
    traces = [r.headers["traceparent"].split("-") for r in got]
    assert {t[1] for t in traces} == {ROUTER_TRACE.split("-")[1]}
    assert len({t[2] for t in traces}) == 4 and ROUTER_TRACE.split("-")[2] not in {
        t[2] for t in traces
    }

    # Off-the-shelf Standard Webhooks code verifies a delivery as sent; and what a
    # provider's verify() makes of a tampered body and of another provider's secret.
    sample = got[0]
    assert Webhook(server.secrets["a"]).verify(sample.body, sample.headers) == bodies[0]
    assert verify(server.secrets["a"], sample.headers, sample.body) == bodies[0]
    tampered = sample.body.replace(b'"EMERGENCY"', b'"ROUTINE"')
    assert tampered != sample.body
    with pytest.raises(SignatureMismatchError):
        verify(server.secrets["a"], sample.headers, tampered)
    with pytest.raises(SignatureMismatchError):
        verify(server.secrets["b"], sample.headers, sample.body)
    assert sample.headers[SIGNATURE_HEADER].startswith("v1,")
    assert abs(int(sample.headers[TIMESTAMP_HEADER]) - time.time()) < 120

    # A record for "a" that is not an event is dead-lettered with the codec's reason.
    [letter] = await asyncio.to_thread(
        read_to_end, kafka_settings, f"{kafka_settings.topic_namespace}.deadletter.v1"
    )
    assert headers_of(letter)["deadletter.error.class"] == b"MissingHeader"
    assert letter.value() == b"not an event" and connector.stats.reported == 0

    # Everything read was finished, so the group's offsets reached the end.
    ends = {p.partition: p.offset + 1 for p in produced}
    ends[letter_partition(letter)] = int(headers_of(letter)["deadletter.source.offset"]) + 1
    for partition, end in ends.items():
        topic = referral_topic(kafka_settings, "housing")
        assert (
            await asyncio.to_thread(committed, kafka_settings, settings.group_id, topic, partition)
            == end
        )


# --------------------------------------------------------------------------- (b)


async def test_a_provider_failing_five_times_then_recovering_gets_the_offer_once(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await asyncio.to_thread(provision, kafka_settings)
    server = Providers(
        secrets("flaky", "busy"),
        {
            "flaky": fails_then_ok(5, 503),
            "busy": fails_then_ok(1, 429, {"Retry-After": "1"}),
        },
    )
    path = write_providers(tmp_path / "webhooks.json", server, ["flaky", "busy"])
    produced = await asyncio.to_thread(
        produce, kafka_settings, [offer("flaky", 1), offer("busy", 1)]
    )
    settings = webhook_settings(path)
    connector = WebhookDelivery(kafka_settings, settings, load_providers(path))

    async with server.serving(), running(connector):
        await async_wait_until(lambda: len(server.accepted("flaky")) == 1, "flaky's 200")
        await async_wait_until(lambda: len(server.accepted("busy")) == 1, "busy's 200")
        # Once both records are committed nothing can be delivered again.
        await asyncio.to_thread(wait_committed, kafka_settings, settings.group_id, produced)

    flaky = server.of("flaky")
    assert [r.status for r in flaky] == [503] * 5 + [200]
    assert sum(1 for r in flaky if r.status == 200) == 1  # exactly one success, no duplicate
    assert {r.headers[ID_HEADER] for r in flaky} == {produced[0].delivery}
    assert len({r.body for r in flaky}) == 1  # the same bytes on every attempt
    gaps = [b.at - a.at for a, b in itertools.pairwise(flaky)]
    # Backoff capped at 0.4 s (uncapped it would reach 3.2 s), with room for a busy machine.
    assert all(gap >= 0 for gap in gaps) and max(gaps) <= 2.0

    busy = server.of("busy")
    assert [r.status for r in busy] == [429, 200]
    assert busy[1].at - busy[0].at >= 0.95  # Retry-After: 1 honoured
    assert connector.stats.dead_lettered == 0 and connector.stats.delivered == 2


# --------------------------------------------------------------------------- (c)


async def test_a_dead_provider_is_dead_lettered_and_reported_without_holding_up_others(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await asyncio.to_thread(provision, kafka_settings)
    names = ["dead", "refused", "gone", "healthy"]
    server = Providers(
        secrets(*names),
        {"dead": always(500), "refused": always(200), "gone": always(410), "healthy": always(200)},
    )
    nobody_listens = f"http://127.0.0.1:{free_port()}/hooks/refused"
    path = write_providers(tmp_path / "webhooks.json", server, names, {"refused": nobody_listens})
    horizon = 8.0  # long enough for a busy machine to serve the healthy ones meanwhile
    settings = webhook_settings(path, max_elapsed_s=horizon, initial_backoff_s=0.2, max_backoff_s=1)
    # One partition for all: the dead provider's record sits before the healthy ones'.
    failing = await asyncio.to_thread(
        produce,
        kafka_settings,
        [offer("dead", 1), offer("refused", 1), offer("gone", 1)],
        partition=0,
    )
    connector = WebhookDelivery(kafka_settings, settings, load_providers(path))

    async with server.serving(), running(connector):
        await async_wait_until(lambda: len(server.of("dead")) >= 2, "the dead provider in backoff")
        first_failure = server.of("dead")[0].at
        sent = time.monotonic()
        healthy = await asyncio.to_thread(
            produce, kafka_settings, [offer("healthy", n) for n in range(3)], partition=0
        )
        await async_wait_until(lambda: len(server.accepted("healthy")) == 3, "healthy deliveries")
        latency = max(r.at for r in server.accepted("healthy")) - sent
        # Not held up: delivered while the dead one is still being retried.
        assert server.of("dead")[-1].status == 500
        assert connector.stats.reported <= 1  # only "gone", refused at once; dead still trying
        topic = referral_topic(kafka_settings, "housing")
        position = await asyncio.to_thread(committed, kafka_settings, settings.group_id, topic, 0)
        assert position <= failing[0].offset  # nothing past the dead provider's record committed
        await async_wait_until(lambda: connector.stats.reported == 3, "3 reports")
        gave_up = time.monotonic()

    assert gave_up - first_failure >= horizon - 0.5  # the dead one was tried for the horizon
    last_healthy = max(r.at for r in server.accepted("healthy"))
    assert last_healthy < server.of("dead")[-1].at  # delivered before it gave up
    print(f"\nhealthy provider served {latency:.2f} s after its offers (horizon {horizon} s)")
    assert [r.status for r in server.of("gone")] == [410]  # given up at once
    assert len(server.of("dead")) >= 3 and all(r.status == 500 for r in server.of("dead"))
    assert server.of("refused") == []
    assert [r.headers[ID_HEADER] for r in server.accepted("healthy")] == [
        p.delivery for p in healthy
    ]

    letters = await asyncio.to_thread(
        read_to_end, kafka_settings, f"{kafka_settings.topic_namespace}.deadletter.v1"
    )
    assert len(letters) == 3
    by_offset = {int(headers_of(m)["deadletter.source.offset"]): m for m in letters}
    expected = {
        failing[0].offset: ("WebhookUndeliverableError", "HTTP 500"),
        failing[1].offset: ("WebhookUndeliverableError", "ConnectError"),
        failing[2].offset: ("WebhookRejectedError", "HTTP 410"),
    }
    for p in failing:
        letter = by_offset[p.offset]
        reason = headers_of(letter)
        klass, detail = expected[p.offset]
        assert reason["deadletter.error.class"].decode() == klass
        assert detail in reason["deadletter.error.message"].decode()
        assert reason["deadletter.source.topic"].decode() == p.topic
        assert reason["deadletter.source.partition"] == b"0"
        assert letter.value() == p.value and letter.key() == str(p.event.provider_id).encode()

    # Each give-up is reported to the router's input, keyed by survivor; the router
    # (not this connector) re-offers and escalates. Nothing goes to escalations.v1 directly.
    ns = kafka_settings.topic_namespace
    reports = await asyncio.to_thread(read_to_end, kafka_settings, f"{ns}.provider-responses.v1")
    codec = Codec(kafka_settings, source="/test/reader")
    decoded = [codec.decode(m.value(), m.headers(), topic=m.topic(), key=m.key()) for m in reports]
    assert len(decoded) == 3
    assert {d.envelope.id for d in decoded} == {report_id(p.delivery) for p in failing}
    assert {d.envelope.source for d in decoded} == {"/safepassage/webhooks"}
    reasons = {}
    for d in decoded:
        event = d.event
        assert isinstance(event, ReferralUndelivered)
        assert event.undelivered is UndeliveredEvent.REFERRAL_OFFERED and event.attempt == 1
        reasons[event.referral_id] = event.reason
    assert reasons == {
        failing[0].event.referral_id: DeliveryFailure.UNREACHABLE,
        failing[1].event.referral_id: DeliveryFailure.UNREACHABLE,
        failing[2].event.referral_id: DeliveryFailure.REJECTED,
    }
    assert await asyncio.to_thread(read_to_end, kafka_settings, f"{ns}.escalations.v1") == []

    end = max(p.offset for p in [*failing, *healthy]) + 1
    assert await asyncio.to_thread(committed, kafka_settings, settings.group_id, topic, 0) == end


# --------------------------------------------------------------------------- restart


async def test_a_restart_delivers_unfinished_records_again_under_the_same_delivery_id(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await asyncio.to_thread(provision, kafka_settings)
    server = Providers(secrets("later"), {"later": always(503)})
    path = write_providers(tmp_path / "webhooks.json", server, ["later"])
    [produced] = await asyncio.to_thread(produce, kafka_settings, [offer("later", 1)])
    settings = webhook_settings(path)
    topic = referral_topic(kafka_settings, "housing")

    async with server.serving():
        first = WebhookDelivery(kafka_settings, settings, load_providers(path))
        async with running(first):
            await async_wait_until(lambda: len(server.of("later")) >= 2, "attempts before the stop")
        position = await asyncio.to_thread(
            committed, kafka_settings, settings.group_id, topic, produced.partition
        )
        assert position <= produced.offset  # stopped in backoff: the record is not committed

        server.behaviours["later"] = always(200)
        second = WebhookDelivery(kafka_settings, settings, load_providers(path))
        async with running(second):
            await async_wait_until(
                lambda: len(server.accepted("later")) == 1, "delivery after restart"
            )

    assert {r.headers[ID_HEADER] for r in server.of("later")} == {produced.delivery}
    assert (first.stats.delivered, second.stats.delivered) == (0, 1)
    assert (
        await asyncio.to_thread(
            committed, kafka_settings, settings.group_id, topic, produced.partition
        )
        == produced.offset + 1
    )
