"""The probe server every process runs, and the HTTP pieces of the metrics."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from connectors.observability import ReferralStatusCollector, RequestMetrics, count_referrals
from processors.status import status_record
from streams import metrics
from streams.exceptions import StreamsError
from streams.metrics import DEFAULT_PORTS, MetricsSettings, ProbeServer, serve_probes
from tests.unit.domain_builders import Harness, consent, identified, provider, request, uid


@pytest.fixture
def probes() -> Iterator[tuple[ProbeServer, dict[str, bool]]]:
    state = {"live": True, "ready": False}
    server = ProbeServer(
        "127.0.0.1", 0, live=lambda: state["live"], ready=lambda: state["ready"]
    ).start()
    yield server, state
    server.close()


def get(server: ProbeServer, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.port}{path}", timeout=5)


def test_metrics_are_served_in_the_prometheus_text_format(
    probes: tuple[ProbeServer, dict[str, bool]],
) -> None:
    server, _ = probes
    answer = get(server, "/metrics")
    assert answer.status_code == 200
    for name in (
        "safepassage_events_in_total",
        "safepassage_dead_letters_total",
        "safepassage_routing_seconds_bucket",
        "safepassage_consumer_lag",
    ):
        assert name in answer.text or name.split("_total")[0] in answer.text


def test_liveness_and_readiness_follow_their_probes(
    probes: tuple[ProbeServer, dict[str, bool]],
) -> None:
    server, state = probes
    assert get(server, "/livez").status_code == 200
    assert get(server, "/readyz").status_code == 503
    state["ready"] = True
    assert get(server, "/readyz").status_code == 200
    state["live"] = False
    assert get(server, "/livez").status_code == 503
    assert get(server, "/elsewhere").status_code == 404


def test_a_probe_that_raises_says_no_and_the_server_goes_on() -> None:
    def broken() -> bool:
        raise RuntimeError("boom")

    server = ProbeServer("127.0.0.1", 0, live=lambda: True, ready=broken).start()
    try:
        assert get(server, "/readyz").status_code == 503
        assert get(server, "/livez").status_code == 200
    finally:
        server.close()


def test_a_port_set_and_taken_is_one_clear_error_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StreamsError, match="SAFEPASSAGE_METRICS_PORT"):
            serve_probes("worker", ready=lambda: True, settings=MetricsSettings(port=port))


def test_a_default_port_taken_falls_back_to_a_free_one(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setattr(
            metrics, "DEFAULT_PORTS", {**DEFAULT_PORTS, "worker": taken.getsockname()[1]}
        )
        server = serve_probes("worker", ready=lambda: True, settings=MetricsSettings())
        try:
            assert server.port != taken.getsockname()[1]
            assert get(server, "/livez").status_code == 200
        finally:
            server.close()


def requests_counted(route: str, status: str) -> float:
    labels = {"route": route, "method": "GET", "status": status}
    return REGISTRY.get_sample_value("safepassage_http_requests_total", labels) or 0.0


def test_requests_are_counted_by_route_template_never_by_path() -> None:
    app = FastAPI()
    app.add_middleware(RequestMetrics)

    @app.get("/v1/survivors/{survivor_id}/status")
    async def status(survivor_id: str) -> dict[str, str]:
        return {"ok": "yes"}

    template = "/v1/survivors/{survivor_id}/status"
    before, missing = requests_counted(template, "200"), requests_counted("unmatched", "404")
    survivor = str(uuid.uuid4())
    with TestClient(app) as client:
        assert client.get(f"/v1/survivors/{survivor}/status").status_code == 200
        assert client.get("/v1/somebody-s-name").status_code == 404
    assert requests_counted(template, "200") == before + 1
    assert requests_counted("unmatched", "404") == missing + 1
    with TestClient(app) as client:  # a method the caller made up is no label of its own
        client.request("MARIA-ELM-STREET", f"/v1/survivors/{survivor}/status")
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            assert survivor not in str(sample.labels)
            assert "somebody" not in str(sample.labels)
            assert "MARIA" not in str(sample.labels)


def test_referrals_are_counted_by_status_and_category_over_every_survivor() -> None:
    h = Harness()
    first, second, referral, other = (uid(f"metrics-{n}") for n in range(4))
    h.all(provider(uid("metrics-provider")), identified(first), consent(first))
    h.all(request(first, referral), identified(second), consent(second), request(second, other))
    records = {s: status_record(h.cases[s]) for s in (first, second)}
    counts = count_referrals(records.values())
    statuses = {status for status, _ in counts}
    assert sum(counts.values()) == 2 and statuses <= {"offered", "unroutable", "requested"}

    collector = ReferralStatusCollector()
    stop = collector.attach(lambda: records)
    (family,) = collector.collect()
    exported = {(s.labels["status"], s.labels["category"]): s.value for s in family.samples}
    assert exported == {key: float(n) for key, n in counts.items()}
    assert all(str(survivor) not in str(family.samples) for survivor in records)
    twice = collector.attach(lambda: records)  # a second intake in the same process adds up
    (family,) = collector.collect()
    assert sum(s.value for s in family.samples) == 2 * sum(counts.values())
    stop()
    twice()
    (family,) = collector.collect()
    assert family.samples == []
