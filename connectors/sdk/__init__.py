"""The agency and provider SDKs: typed events in, the platform's acknowledgement out.

An agency's case-management system publishes through an
:class:`AgencyClient`; a provider's system receives its offers and answers
them through a :class:`ProviderClient`. Both hand events to a
:class:`Transport`: straight to Kafka (:class:`KafkaTransport`) or through
the intake API (:class:`HttpTransport`). Kafka itself (clients, the
acknowledged producer, the consumer loop, offsets, topic names, the codec)
is the shared edge layer in :mod:`streams`; this package adds only what is
the SDKs' own. See ``docs/sdk.md``. The names below are what a caller
needs; the rest of each module's ``__all__`` is for the SDK's own parts and
its tests.

The modules, one job each:

- :mod:`~connectors.sdk.agency`: :class:`AgencyClient`, one method per agency event.
- :mod:`~connectors.sdk.provider`: :class:`ProviderClient`, offers in, answers out.
- :mod:`~connectors.sdk.offers`: what a provider receives, copies recognised,
  answer ids (pure).
- :mod:`~connectors.sdk.events`: the checks both SDKs make before anything is
  sent, and remembered ``occurred_at`` for retries.
- :mod:`~connectors.sdk.transport`: the :class:`Transport` interface.
- :mod:`~connectors.sdk.retry`: :class:`RetryPolicy`, when a transport tries again.
- :mod:`~connectors.sdk.kafka_transport`: :class:`KafkaTransport`.
- :mod:`~connectors.sdk.http_transport`: :class:`HttpTransport` and what the
  intake API's answers mean (the CloudEvents JSON it sends is
  :mod:`streams.cloudevents`').

Signed webhooks, the other way a provider receives offers, are not here:
:mod:`connectors.webhooks` is the contract between the webhook connector,
which signs, and providers, which verify.
"""

from connectors.sdk.agency import AgencyClient
from connectors.sdk.events import build_event
from connectors.sdk.http_transport import HttpTransport
from connectors.sdk.kafka_transport import KafkaTransport
from connectors.sdk.offers import Incoming, OfferRef, ProviderStats, answer_id
from connectors.sdk.provider import ProviderClient
from connectors.sdk.retry import RetryPolicy
from connectors.sdk.transport import Outgoing, Transport

__all__ = [
    "AgencyClient",
    "HttpTransport",
    "Incoming",
    "KafkaTransport",
    "OfferRef",
    "Outgoing",
    "ProviderClient",
    "ProviderStats",
    "RetryPolicy",
    "Transport",
    "answer_id",
    "build_event",
]
