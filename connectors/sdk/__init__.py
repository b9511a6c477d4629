"""The agency and provider SDKs: typed events in, the platform's acknowledgement out.

An agency's system publishes through an :class:`AgencyClient`; a provider's
receives its offers and answers them through a :class:`ProviderClient`. Both
hand events to a :class:`Transport`: straight to Kafka (:class:`KafkaTransport`)
or through the intake API (:class:`HttpTransport`). Kafka itself is the shared
edge layer in :mod:`streams`; this package adds only what is the SDKs' own.
The names below are what a caller needs (see ``docs/sdk.md``). Signed
webhooks, the other way a provider receives offers, are :mod:`connectors.webhooks`.
"""

from connectors.sdk.agency import AgencyClient
from connectors.sdk.disclosures import Disclosure, DisclosureClient
from connectors.sdk.events import build_event
from connectors.sdk.http_transport import HttpTransport
from connectors.sdk.kafka_transport import KafkaTransport
from connectors.sdk.offers import Incoming, OfferRef, ProviderStats, answer_id
from connectors.sdk.provider import ProviderClient
from connectors.sdk.retry import RetryPolicy
from connectors.sdk.transport import Outgoing, Transport

__all__ = [
    "AgencyClient",
    "Disclosure",
    "DisclosureClient",
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
