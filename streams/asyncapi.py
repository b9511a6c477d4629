"""The AsyncAPI 3.0 document of SafePassage, generated from the code.

From the topic catalog, the topic contract, the ``.avsc`` files and the
CloudEvents binding, so it cannot say anything the code does not do.
``docs/asyncapi.yaml`` is this output (``safepassage docs asyncapi``); a test keeps them in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from schemas.registry import EventSchemas, event_schemas
from streams.cloudevents import AVRO_MEDIA_TYPE, REQUIRED_HEADERS, SPECVERSION
from streams.contract import Contract
from streams.deadletter import DEADLETTER_HEADERS
from streams.settings import KafkaSettings, Profile
from streams.topics import (
    OFFER_EVENTS,
    PARTY_KINDS,
    Topics,
    TopicSpec,
    catalog,
    offers_spec,
    party_spec,
)

__all__ = ["DOCUMENT", "document", "reference_settings", "render"]

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.yaml"
"""Where the generated document is kept in the repository."""

_AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
_KAFKA_BINDING = "0.5.0"

_HEADER_DOCS = {
    "ce_id": "CloudEvents id: unique per source; a redelivery carries the same id.",
    "ce_source": "CloudEvents source: the publishing service or agency (URI-reference).",
    "ce_type": "CloudEvents type: the event type, e.g. survivor.identified.",
    "ce_specversion": f"CloudEvents spec version, always {SPECVERSION}.",
    "ce_time": "CloudEvents time: RFC 3339, UTC, milliseconds; equals the event's occurred_at.",
    "ce_subject": "CloudEvents subject: the survivor pseudonym, or the provider id.",
    "content-type": f"Always {AVRO_MEDIA_TYPE}.",
}


def _channel_id(spec: TopicSpec, namespace: str) -> str:
    return spec.name.removeprefix(namespace + ".").removesuffix(".v1").replace(".", "-")


def _message(schemas: EventSchemas, event_type: str) -> dict[str, Any]:
    schema = schemas.current(event_type)
    definition = dict(schema.definition)
    return {
        "name": event_type,
        "title": event_type,
        "summary": str(definition.get("doc", "")),
        "contentType": AVRO_MEDIA_TYPE,
        "headers": {"$ref": "#/components/schemas/CloudEventsHeaders"},
        "payload": {"schemaFormat": _AVRO_FORMAT, "schema": definition},
        "correlationId": {"location": "$message.header#/ce_id"},
    }


def _headers_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "CloudEvents 1.0 Kafka protocol binding, binary mode (UTF-8 values).",
        "required": list(REQUIRED_HEADERS),
        "properties": {
            name: {"type": "string", "description": _HEADER_DOCS[name]} for name in REQUIRED_HEADERS
        },
    }


def _deadletter_headers_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The original record's headers, untouched, followed by these.",
        "properties": {name: {"type": "string"} for name in DEADLETTER_HEADERS},
    }


_PARAMETERS = {
    "providerId": "A provider's directory id (a UUID).",
    "agencyId": "An agency's id as its principal names it: letters, digits and '-'.",
}
"""Placeholders of the per-party channels' addresses."""


_PartyChannel = tuple[str, TopicSpec, str, frozenset[str], str]


def _party_channels(settings: KafkaSettings) -> list[_PartyChannel]:
    """(channel id, a sample spec, address with a placeholder, event types, description).

    Topics created per provider and per party (``streams/topics.py``): one
    parameterised channel each, with the bindings of the real specs.
    """
    topics = Topics.of(settings)
    sample = "SAMPLE"  # stands for an id in the specs; only their bindings are used
    return [
        (
            "offers-provider",
            offers_spec(settings, sample),
            f"{topics.offers_prefix}{{providerId}}.v1",
            OFFER_EVENTS,
            "One provider's own offers and cancellations, copied from the referral topics by "
            "the offers relay; only that provider's principal may read it.",
        ),
        (
            "from-agencies",
            party_spec(settings, f"/agencies/{sample}"),
            f"{topics.parties_prefix}agencies.{{agencyId}}.v1",
            PARTY_KINDS["agencies"],
            "What one agency publishes on Kafka itself (only its principal may write it); the "
            "inbound relay checks each record as the HTTP intake would and moves it to intake.",
        ),
        (
            "from-providers",
            party_spec(settings, f"/providers/{sample}"),
            f"{topics.parties_prefix}providers.{{providerId}}.v1",
            PARTY_KINDS["providers"],
            "What one provider answers on Kafka itself (only its principal may write it); the "
            "inbound relay checks each answer and moves it to provider-responses.",
        ),
    ]


def _channel(
    spec: TopicSpec,
    event_types: list[str],
    address: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "address": address or spec.name,
        "description": description or spec.description,
        "messages": {
            event_type.replace(".", "-"): {"$ref": f"#/components/messages/{event_type}"}
            for event_type in event_types
        },
        "bindings": {
            "kafka": {
                "topic": address or spec.name,
                "partitions": spec.partitions,
                "replicas": spec.replication_factor,
                "topicConfiguration": {
                    "cleanup.policy": [spec.cleanup_policy.value],
                    "retention.ms": spec.retention_ms,
                },
                "bindingVersion": _KAFKA_BINDING,
            }
        },
        "x-key": spec.key,
    }
    if address is not None:
        channel["parameters"] = {
            name: {"description": text} for name, text in _PARAMETERS.items() if name in address
        }
    if spec.name.endswith(".deadletter.v1"):
        channel["x-deadletter-headers"] = _deadletter_headers_schema()
    return channel


def _operations(channel_id: str, channel: dict[str, Any]) -> dict[str, Any]:
    refs = [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in channel["messages"]]
    if not refs:
        return {}
    return {
        f"{action}-{channel_id}": {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": (
                f"{action.capitalize()} events on {channel['address']} (key: {channel['x-key']})."
            ),
            "messages": refs,
        }
        for action in ("send", "receive")
    }


def document(settings: KafkaSettings, schemas: EventSchemas | None = None) -> dict[str, Any]:
    """The AsyncAPI document as a plain dict (stable order, ready for YAML)."""
    schemas = schemas or event_schemas()
    contract = Contract(settings)
    ns = settings.topic_namespace
    channels: dict[str, Any] = {}
    for spec in catalog(settings):
        topic = contract.topics.get(spec.name)
        channels[_channel_id(spec, ns)] = _channel(spec, sorted(topic.event_types) if topic else [])
    for channel_id, spec, address, events, description in _party_channels(settings):
        channels[channel_id] = _channel(spec, sorted(events), address, description)
    operations: dict[str, Any] = {}
    for channel_id, channel in channels.items():
        operations.update(_operations(channel_id, channel))
    used = {
        message["$ref"].rsplit("/", 1)[1]
        for c in channels.values()
        for message in c["messages"].values()
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "SafePassage events",
            "version": "1",
            "description": (
                "Event contract of SafePassage, a referral and service-coordination platform "
                "for survivors of human trafficking. Values are Avro (single-object encoding, "
                "or the Confluent wire format with a schema registry); personal data travels "
                "only in sealed fields. Generated from the code: do not edit by hand."
            ),
        },
        "defaultContentType": AVRO_MEDIA_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The development broker started by `make run`.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": {event_type: _message(schemas, event_type) for event_type in sorted(used)},
            "schemas": {"CloudEventsHeaders": _headers_schema()},
        },
    }


def reference_settings() -> KafkaSettings:
    """Defaults with the production profile, whatever the local shell's environment sets."""
    return KafkaSettings.model_construct(profile=Profile.PRODUCTION)


def render(settings: KafkaSettings | None = None) -> str:
    """The document as YAML text (the reference settings unless told otherwise)."""
    return yaml.safe_dump(
        document(settings or reference_settings()),
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
