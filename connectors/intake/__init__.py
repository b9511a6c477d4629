"""The intake HTTP API: agencies and providers hand CloudEvents to SafePassage over HTTP.

``POST /v1/events`` takes CloudEvents 1.0 in the HTTP binding's structured and
batch content modes and publishes each event, typed and encoded by the codec
under the caller's own ``id`` and ``source``, to the topic the contract gives
it. **202 means on Kafka**: every record was acknowledged (``acks=all``); any
other answer may be retried safely (:mod:`connectors.idempotency`). Errors are
RFC 9457 problem documents, bad input always a 4xx. Responses, logs and Kafka
headers carry ids, types and codes only. docs/intake-api.md is the guide.

The modules, in the order a request meets them:

- :mod:`~connectors.intake.settings`: :class:`IntakeSettings`, read at start.
- :mod:`~connectors.intake.app`: :func:`create_app`, the routes and ``/healthz``.
- :mod:`~connectors.intake.body`: media type, body size and strict JSON.
- :mod:`~connectors.intake.cloudevents`: CloudEvents checked into typed events,
  with the caller's rights.
- :mod:`~connectors.intake.service`: authentication, idempotency, publishing.
- :mod:`~connectors.intake.publisher`: :class:`Publisher`, :class:`KafkaPublisher`.
- :mod:`~connectors.intake.status`: the operators' status read.
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
