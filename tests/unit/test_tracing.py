"""W3C traceparent: only the standard form travels, and every hop is a child of the last."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.tracing import TracesExporter, TracingSettings, span, traceparent_of

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_found_among_http_or_kafka_headers() -> None:
    assert traceparent_of({"Traceparent": VALID}) == VALID
    assert traceparent_of([("ce_id", b"x"), ("traceparent", VALID.encode())]) == VALID
    assert traceparent_of(None) is None and traceparent_of([]) is None


@pytest.mark.parametrize(
    "value",
    [
        "Maria, 12 Elm Street",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
    ],
)
def test_anything_but_the_w3c_form_is_dropped(value: str) -> None:
    assert traceparent_of({"traceparent": value}) is None


@given(st.text(max_size=80))
def test_no_text_survives_unless_it_is_a_traceparent(value: str) -> None:
    found = traceparent_of({"traceparent": value})
    assert found is None or (len(found) == 55 and set(found) <= set("0123456789abcdef-"))


def test_a_span_continues_its_parents_trace_with_a_span_id_of_its_own() -> None:
    with span("test.hop", VALID, event_type="referral.requested") as child:
        assert child.split("-")[1] == VALID.split("-")[1]
        assert child.split("-")[2] != VALID.split("-")[2]
        with span("test.next", child) as grandchild:
            assert grandchild.split("-")[1] == VALID.split("-")[1]


def test_without_a_parent_a_new_trace_begins() -> None:
    with span("test.root", None) as first, span("test.root", None) as second:
        assert traceparent_of({"traceparent": first}) == first
        assert first.split("-")[1] != second.split("-")[1]


def test_export_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TracingSettings().exporter is TracesExporter.NONE
    monkeypatch.setenv("SAFEPASSAGE_TRACES_EXPORTER", "otlp")
    assert TracingSettings().exporter is TracesExporter.OTLP
