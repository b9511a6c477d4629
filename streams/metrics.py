"""The platform's Prometheus metrics, declared once, and the probe server every process runs.

Every SafePassage process (router worker, intake, relays, webhook delivery,
console) serves ``/metrics``, ``/livez`` and ``/readyz`` on a port of its own
(:class:`MetricsSettings`), bound to loopback by default: metrics carry no
personal data, but the number of open referrals of a small shelter is still
nobody's business outside the host. Labels are closed vocabularies (event
types, error classes, statuses, levels, route templates): never an id, a
path with an id in it, or anything a caller typed.

The metrics live in ``prometheus_client``'s default registry, one per
process; a process that does not touch a metric still exports it at zero,
so dashboards see every series from the start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from socketserver import ThreadingMixIn
from types import MappingProxyType
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.exceptions import StreamsError
from streams.logs import get_logger

__all__ = [
    "CONSUMER_LAG",
    "DEAD_LETTERS",
    "DEFAULT_PORTS",
    "ESCALATIONS",
    "EVENTS_IN",
    "EVENTS_OUT",
    "HTTP_REQUESTS",
    "ROUTING_SECONDS",
    "MetricsSettings",
    "ProbeServer",
    "serve_probes",
]

log = get_logger(__name__)

EVENTS_IN = Counter(
    "safepassage_events_in",
    "Records this process consumed, by CloudEvents type (undecodable ones: 'undecodable').",
    ["type"],
)
EVENTS_OUT = Counter(
    "safepassage_events_out",
    "Events this process published and had acknowledged, by CloudEvents type.",
    ["type"],
)
DEAD_LETTERS = Counter(
    "safepassage_dead_letters",
    "Records this process dead-lettered, by the error class that is the reason.",
    ["reason"],
)
ROUTING_SECONDS = Histogram(
    "safepassage_routing_seconds",
    "Time from a record's arrival at the router to its step being acknowledged "
    "(decision, outputs acked, tables written).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ESCALATIONS = Counter(
    "safepassage_escalations",
    "referral.escalated events the router published, by ladder level.",
    ["level"],
)
HTTP_REQUESTS = Counter(
    "safepassage_http_requests",
    "HTTP requests answered, by route template (never the path itself), method and status.",
    ["route", "method", "status"],
)
CONSUMER_LAG = Gauge(
    "safepassage_consumer_lag",
    "Records not yet processed on a partition this process owns (end offset - committed), "
    "as last sampled.",
    ["topic", "partition"],
)


class MetricsSettings(BaseSettings):
    """Where a process serves its metrics and probes (each process has a default port)."""

    model_config = SettingsConfigDict(env_prefix="SAFEPASSAGE_METRICS_", frozen=True)

    host: str = Field(default="127.0.0.1", description="SAFEPASSAGE_METRICS_HOST.")
    port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="SAFEPASSAGE_METRICS_PORT: unset for the process's default, 0 for any.",
    )


Probe = Callable[[], bool]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not news; wsgiref would print each to stderr."""


class ProbeServer:
    """``/metrics``, ``/livez`` and ``/readyz`` on a daemon thread of this process.

    A thread, not the process's event loop, so that a scrape still answers when
    the loop is busy, and ``/livez`` answers as long as the process is alive.
    ``/readyz`` answers 200 only when ``ready()`` says the process does its work
    (the worker has its partitions, the intake's read models caught up).
    """

    def __init__(self, host: str, port: int, *, live: Probe, ready: Probe) -> None:
        metrics = make_wsgi_app()

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/metrics":
                return metrics(environ, start_response)  # type: ignore[no-any-return]
            if path in ("/livez", "/readyz"):
                ok = _safely(live if path == "/livez" else ready)
                status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
                start_response(f"{status.value} {status.phrase}", [("Content-Type", "text/plain")])
                return [b"ok\n" if ok else b"not ready\n"]
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"/metrics, /livez or /readyz\n"]

        try:
            self._server = make_server(
                host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise StreamsError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror}); "
                "set SAFEPASSAGE_METRICS_PORT to a free port"
            ) from exc
        # A short poll so that close() returns at once (it waits for the loop to notice).
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> ProbeServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _safely(probe: Probe) -> bool:
    try:
        return bool(probe())
    except Exception:  # a probe that fails says "no"; it must not take the server down
        return False


DEFAULT_PORTS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "worker": 9464,
        "intake": 9465,
        "inbound-relay": 9466,
        "offers-relay": 9467,
        "webhooks": 9468,
        "console": 9469,
    }
)
"""Each process's port when SAFEPASSAGE_METRICS_PORT is not set (Prometheus's 9464 onwards)."""


def serve_probes(
    service: str,
    *,
    ready: Probe,
    live: Probe = lambda: True,
    settings: MetricsSettings | None = None,
) -> ProbeServer:
    """Start the probe server of ``service`` (settings from the environment unless given).

    A port that was set and is taken stops the process with one line naming
    the setting. The default port being taken (a second process of the same
    kind on the host, as tests start them) is no reason to refuse work: the
    server then takes any free port and says which.
    """
    settings = settings or MetricsSettings()
    if settings.port is not None:
        server = ProbeServer(settings.host, settings.port, live=live, ready=ready)
    else:
        try:
            server = ProbeServer(settings.host, DEFAULT_PORTS[service], live=live, ready=ready)
        except StreamsError:
            server = ProbeServer(settings.host, 0, live=live, ready=ready)
            log.warning("metrics.default_port_taken", service=service, port=server.port)
    log.info("metrics.serving", service=service, host=settings.host, port=server.port)
    return server.start()
