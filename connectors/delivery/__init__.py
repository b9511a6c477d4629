"""Webhook delivery: offers and cancellations to providers that do not read Kafka.

``safepassage deliver webhooks`` reads every referral topic in a consumer
group of its own and POSTs each record addressed to a provider listed in
the webhooks file as a signed JSON webhook (:mod:`connectors.webhooks`);
other providers consume Kafka themselves. Delivery is at least once, a
delivery given up is dead-lettered and reported to the router as
``referral.undelivered``, and one provider cannot hold up another:
docs/webhooks.md states these guarantees and their limits. Logs carry
topic, partition, offset, provider id, delivery id and event id; never a
URL (it may hold a token), a secret or a body.

One concern a module: ``settings``, ``retry`` (what an attempt's outcome
means), ``undelivered`` (the report), ``jobs``, ``sender`` (one record),
``connector`` (the consumer loop, per-provider queues, commits) and ``cli``.
"""

from connectors.delivery.cli import register
from connectors.delivery.connector import WebhookDelivery
from connectors.delivery.retry import (
    Verdict,
    next_delay,
    parse_retry_after,
    should_stop,
    verdict_for_error,
    verdict_for_status,
)
from connectors.delivery.settings import WebhookSettings, load_providers
from connectors.delivery.undelivered import (
    REPORT_ID_NAMESPACE,
    SOURCE,
    failure_reason,
    report_for,
    report_id,
)

__all__ = [
    "REPORT_ID_NAMESPACE",
    "SOURCE",
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
