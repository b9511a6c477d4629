"""The intake HTTP API: agencies and providers hand CloudEvents to SafePassage over HTTP.

``POST /v1/events`` takes CloudEvents 1.0 in the HTTP binding's *structured*
(``application/cloudevents+json``, one event) and *batch*
(``application/cloudevents-batch+json``, an array) content modes. Each
event's ``data`` is the JSON of the event model its ``type`` names
(:mod:`schemas.models`); the typed event is encoded by the codec under the
caller's own CloudEvents ``id`` and ``source`` and published to the topic the
contract gives it: agency events to ``intake.v1``, provider answers to
``provider-responses.v1``.

**202 means on Kafka.** The answer is 202 only after the broker acknowledged
every record (``acks=all``, idempotent producer); anything else is an
error the client can retry: 503 when the broker is down, 429 when too many
publishes are in flight. A retry is safe: :mod:`connectors.idempotency`
makes (source, id) publish once and answers a retry with the same receipt.

**Errors** are RFC 9457 ``application/problem+json`` documents, with field
level ``errors`` (``location`` is a JSON Pointer into the request body) for
validation. Bad input is always a 4xx, never a 500.

**Privacy.** Responses, logs and Kafka headers carry ids, types and codes
only; the body is never logged, and CloudEvents extension attributes are
refused because they would travel unsealed in Kafka headers.

The publisher is an interface (:class:`Publisher`): the service uses
:class:`KafkaPublisher` (confluent-kafka, delivery reports settled onto the
event loop from a poll thread); unit tests pass an in-process recorder.

The modules, in the order a request meets them:

- :mod:`~connectors.intake.settings`: :class:`IntakeSettings`, read at start.
- :mod:`~connectors.intake.app`: :func:`create_app`, the routes and ``/healthz``.
- :mod:`~connectors.intake.body`: media type, body size and strict JSON.
- :mod:`~connectors.intake.cloudevents`: CloudEvents (:mod:`streams.cloudevents`) checked
  into typed events, with the caller's rights.
- :mod:`~connectors.intake.service`: authentication, idempotency, publishing.
- :mod:`~connectors.intake.publisher`: :class:`Publisher`, :class:`KafkaPublisher`.
- :mod:`~connectors.intake.status`: the operators' status read, via a router worker.
- :mod:`~connectors.intake.problems`: problem+json answers and error handlers.
- :mod:`~connectors.intake.openapi`: response models and the OpenAPI document.
- :mod:`~connectors.intake.cli`: ``safepassage intake serve`` and ``keys add``.
"""

from __future__ import annotations

from connectors.intake.app import create_app
from connectors.intake.cli import register, serve
from connectors.intake.problems import ProblemError
from connectors.intake.publisher import Delivery, KafkaPublisher, Publisher
from connectors.intake.settings import IntakeSettings
from streams.cloudevents import BATCH_MEDIA_TYPE, STRUCTURED_MEDIA_TYPE

__all__ = [
    "BATCH_MEDIA_TYPE",
    "STRUCTURED_MEDIA_TYPE",
    "Delivery",
    "IntakeSettings",
    "KafkaPublisher",
    "ProblemError",
    "Publisher",
    "create_app",
    "register",
    "serve",
]
