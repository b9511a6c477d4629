"""How ``safepassage run`` tells that a service is ready: its port, its /healthz, its /readyz.

A service that serves HTTP is ready when its ``/healthz`` answers 200 over
HTTPS, its certificate checked against the local CA (the intake's health
includes a metadata request to Kafka, so it also turns unreachable when
the broker does). A consumer that serves no API (the router worker, the
relays, the webhook delivery) is ready when ``/readyz`` on its probe port
(:mod:`streams.metrics`) answers 200.

Not by asking the broker about consumer groups: an admin client kept in the
supervisor for that hung the run's exit once the broker had stopped
(librdkafka's destroy waiting on a broker thread; seen with gdb in
``Admin_dealloc``). Each probe answers a plain bool and swallows its errors:
"not yet" is not a failure.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx

from connectors.platform.supervisor import Probe

__all__ = ["https_probe", "tcp_probe"]


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
