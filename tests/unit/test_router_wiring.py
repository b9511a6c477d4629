"""The router's Faust app as built, without a broker: it serves no HTTP."""

from __future__ import annotations

from pathlib import Path

from processors.router import build_router
from processors.settings import ClockMode, EscalationSettings
from streams.app import create_app
from streams.settings import KafkaSettings


def test_the_router_serves_no_http_and_publishes_status_to_the_catalog_topic(
    tmp_path: Path,
) -> None:
    settings = KafkaSettings(topic_namespace="wiring")
    router = build_router(
        settings,
        store="memory://",
        data_dir=tmp_path,
        clock=EscalationSettings(clock=ClockMode.EXTERNAL),
    )

    # Status is read through the intake, from case-status.v1: no web server, no page,
    # no request forwarding between workers.
    assert router.app.conf.web_enabled is False
    assert router.binding.status.get_topic_name() == "wiring.case-status.v1"  # type: ignore[attr-defined]


def test_no_faust_app_of_ours_starts_a_web_server(tmp_path: Path) -> None:
    app = create_app(KafkaSettings(), "unit-web", data_dir=tmp_path, store="memory://")

    assert app.conf.web_enabled is False and app.conf.web_tables_enabled is False
