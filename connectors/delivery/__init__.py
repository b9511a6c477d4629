"""Webhook delivery: offers and cancellations to providers that do not read Kafka.

``safepassage deliver webhooks`` reads every referral topic
(``<ns>.referrals.<category>.v1``, keyed by provider id) in a consumer group
of its own and POSTs each record addressed to a provider listed in the
webhooks file as a signed JSON webhook (:mod:`connectors.webhooks`).
Providers not in the file are skipped: they consume Kafka themselves.

Guarantees, and how they are kept:

* **At least once.** Offsets are committed by hand, and only up to the
  lowest offset of each partition that is not finished yet
  (:class:`OffsetTracker`). A record is finished when the provider answered
  2xx, or when delivery was given up *and* the record is in the dead-letter
  topic and a ``referral.undelivered`` is on ``provider-responses.v1``. After a
  crash, unfinished records are delivered again under the same delivery
  id, which providers deduplicate on.
* **Nothing silently dropped.** A delivery given up (a status that is not
  retried, or no 2xx within ``max_elapsed_s``) is dead-lettered with the
  project's reason headers and reported to the router as
  ``referral.undelivered``: the router re-offers an undelivered offer to the
  next provider and escalates (``DELIVERY_FAILED``) along the ladder, so the
  case status and the ladder know; a record that does not decode is
  dead-lettered.
* **One provider cannot hold up another.** Each provider has its own queue
  and worker (its deliveries stay in order); a worker waiting out a
  backoff holds no request slot; only HTTP requests in flight are bounded
  (``max_in_flight``). The horizon runs from when a record was read, so a
  dead provider's queue drains within about one horizon, however long.
* **Retries.** Timeouts, connection errors, 5xx and 429 are retried with
  exponential backoff and full jitter (tenacity), waiting at least as long
  as a ``Retry-After`` asks; any other status is final at once.

Logs carry topic, partition, offset, provider id, delivery id and event id;
never a URL (it may hold a token), a secret or a body.

The package, one concern a module:

* :mod:`~connectors.delivery.settings`: environment settings and the
  webhooks file (:func:`load_providers`).
* :mod:`~connectors.delivery.retry`: what an attempt's outcome means and
  how long to wait before the next.
* :mod:`streams.offsets` (shared): the contiguous-prefix commit tracker.
* :mod:`~connectors.delivery.undelivered`: the report of a given-up delivery.
* :mod:`~connectors.delivery.jobs`: what the consumer loop hands a worker.
* :mod:`~connectors.delivery.sender`: one record's delivery, or its dead
  letter and report.
* :mod:`~connectors.delivery.connector`: the consumer loop, per-provider
  queues and commits (:class:`WebhookDelivery`).
* :mod:`~connectors.delivery.cli`: ``safepassage deliver webhooks``.
"""

from connectors.delivery.cli import register
from connectors.delivery.connector import WebhookDelivery
from connectors.delivery.jobs import DeliveryStats
from connectors.delivery.retry import (
    AttemptResult,
    Verdict,
    next_delay,
    parse_retry_after,
    should_stop,
    verdict_for_error,
    verdict_for_status,
)
from connectors.delivery.settings import ProviderEndpoint, WebhookSettings, load_providers
from connectors.delivery.undelivered import (
    REPORT_ID_NAMESPACE,
    SOURCE,
    failure_reason,
    report_for,
    report_id,
)
from streams.offsets import OffsetTracker, Partition

__all__ = [
    "REPORT_ID_NAMESPACE",
    "SOURCE",
    "AttemptResult",
    "DeliveryStats",
    "OffsetTracker",
    "Partition",
    "ProviderEndpoint",
    "Verdict",
    "WebhookDelivery",
    "WebhookSettings",
    "failure_reason",
    "load_providers",
    "next_delay",
    "parse_retry_after",
    "register",
    "report_for",
    "report_id",
    "should_stop",
    "verdict_for_error",
    "verdict_for_status",
]
