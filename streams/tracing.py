"""W3C Trace Context through the platform, with OpenTelemetry: one trace from a POST to a webhook.

A caller may send a ``traceparent`` HTTP header; the intake starts its span
under it and writes the span's ``traceparent`` as a Kafka header on every
record it publishes; the router starts its span under the input's header and
writes its own on every event it publishes for that input; the relays copy
headers as they are; the webhook delivery starts its span under the offer's
header and sends its own ``traceparent`` with the webhook. So a provider's
answer, or an operator's question, can be tied to the request that began it.

Only the W3C form travels (``00-<32 hex>-<16 hex>-<2 hex>``): OpenTelemetry's
propagator parses it, and a malformed or foreign value is dropped, so a header
can never smuggle text into Kafka. Spans carry ids and event types only.

Export is off by default (``SAFEPASSAGE_TRACES_EXPORTER=none``): spans are made,
so ids propagate, and then dropped. ``console`` prints them, ``otlp`` sends
them to an OpenTelemetry collector (``OTEL_EXPORTER_OTLP_ENDPOINT``, the
exporter's own variables).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "TRACEPARENT",
    "TracesExporter",
    "TracingSettings",
    "configure_tracing",
    "span",
    "traceparent_of",
]

TRACEPARENT: Final = "traceparent"
"""The W3C header name, the same in HTTP and in Kafka record headers."""

_PROPAGATOR = TraceContextTextMapPropagator()
_lock = threading.Lock()
_provider: TracerProvider | None = None


class TracesExporter(StrEnum):
    NONE = "none"
    CONSOLE = "console"
    OTLP = "otlp"


class TracingSettings(BaseSettings):
    """Where spans go (nowhere unless asked)."""

    model_config = SettingsConfigDict(env_prefix="SAFEPASSAGE_TRACES_", frozen=True)

    exporter: TracesExporter = Field(
        default=TracesExporter.NONE, description="SAFEPASSAGE_TRACES_EXPORTER."
    )


def configure_tracing(service: str, settings: TracingSettings | None = None) -> TracerProvider:
    """The process's tracer provider, made once (the first call's service names it)."""
    global _provider  # noqa: PLW0603 - one provider per process, as OpenTelemetry has it
    with _lock:
        if _provider is not None:
            return _provider
        settings = settings or TracingSettings()
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        processor = _processor(settings.exporter)
        if processor is not None:
            provider.add_span_processor(processor)
        _provider = provider
        return provider


def _processor(exporter: TracesExporter) -> SpanProcessor | None:
    if exporter is TracesExporter.CONSOLE:
        return SimpleSpanProcessor(ConsoleSpanExporter())
    if exporter is TracesExporter.OTLP:
        # Imported here: the OTLP exporter pulls in protobuf, which most processes never need.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        return BatchSpanProcessor(OTLPSpanExporter())
    return None


def traceparent_of(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> str | None:
    """The valid W3C ``traceparent`` among HTTP or Kafka headers, else None."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name.lower() != TRACEPARENT or value is None:
            continue
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
        context = _PROPAGATOR.extract({TRACEPARENT: text})
        if trace.get_current_span(context).get_span_context().is_valid:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, context=context)
            return carrier.get(TRACEPARENT)
        return None
    return None


@contextlib.contextmanager
def span(name: str, parent: str | None, **attributes: str) -> Iterator[str]:
    """A span under ``parent`` (a traceparent, or None for a new trace); yields its traceparent.

    ``attributes`` must be ids and types only: spans may leave the host.
    """
    provider = _provider or configure_tracing("safepassage")
    # No parent: a root, never a child of whatever span happens to be current.
    context = _PROPAGATOR.extract({TRACEPARENT: parent}) if parent else Context()
    tracer = provider.get_tracer("safepassage")
    with tracer.start_as_current_span(name, context=context, attributes=attributes) as current:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(current))
        yield carrier[TRACEPARENT]
