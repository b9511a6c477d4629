"""How ``safepassage run`` tells that a service is ready: its port, its /healthz, its group.

A service that serves HTTP is ready when its ``/healthz`` answers 200 over
HTTPS, its certificate checked against the local CA (the intake's health
includes a metadata request to Kafka, so it also turns unreachable when
the broker does). A consumer that serves no port (the router worker, the
relays, the webhook delivery) is ready when its consumer group is stable
with a member: it has joined and been given its partitions. A consumer
that may have nothing to join (the inbound relay subscribes to a pattern
that matches no topic until a party exists) is ready when its log says it
started, after the supervisor's latest start mark. Each probe
answers a plain bool and swallows its errors: "not yet" is not a failure.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from connectors.platform.supervisor import START_MARK, Probe
from streams.clients import admin_client
from streams.settings import KafkaSettings

__all__ = ["group_probe", "https_probe", "log_probe", "tcp_probe"]


_TIMEOUT_S = 2.0


def tcp_probe(host: str, port: int) -> Probe:
    """Something accepts TCP connections on host:port."""

    async def probe() -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), _TIMEOUT_S)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    return probe


def https_probe(url: str, cafile: Path | None) -> Probe:
    """``GET url`` answers 200; over HTTPS the certificate is checked against ``cafile``.

    The CA is read at the first probe: a first run makes it when the broker starts.
    """
    contexts: list[ssl.SSLContext] = []

    async def probe() -> bool:
        if cafile is not None and not contexts:
            contexts.append(ssl.create_default_context(cafile=str(cafile)))
        verify: ssl.SSLContext | bool = contexts[0] if contexts else True
        try:
            async with httpx.AsyncClient(verify=verify, timeout=_TIMEOUT_S) as client:
                response = await client.get(url)
        except httpx.HTTPError:
            return False
        return response.status_code == httpx.codes.OK

    return probe


def group_probe(admin: Callable[[], KafkaSettings], group_id: str) -> Probe:
    """The consumer group ``group_id`` is stable and has a member (asked as ``admin()``).

    ``admin`` is called at the first probe: the credentials exist once the broker runs.
    """
    clients: list[AdminClient] = []

    def described() -> bool:
        if not clients:
            clients.append(admin_client(admin()))
        futures = clients[0].describe_consumer_groups([group_id], request_timeout=_TIMEOUT_S)
        try:
            group = futures[group_id].result(timeout=_TIMEOUT_S + 1)
        except (KafkaException, TimeoutError):
            return False
        return group.state is ConsumerGroupState.STABLE and bool(group.members)

    async def probe() -> bool:
        return await asyncio.to_thread(described)

    return probe


def log_probe(path: Path, marker: str) -> Probe:
    """``marker`` appears in ``path`` after the latest start mark (this start's own output)."""

    def logged() -> bool:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
        return marker in text[text.rfind(START_MARK) :]

    async def probe() -> bool:
        return await asyncio.to_thread(logged)

    return probe
