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
from streams.topics import TopicSpec, catalog

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


def document(settings: KafkaSettings, schemas: EventSchemas | None = None) -> dict[str, Any]:
    """The AsyncAPI document as a plain dict (stable order, ready for YAML)."""
    schemas = schemas or event_schemas()
    contract = Contract(settings)
    ns = settings.topic_namespace
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    used: set[str] = set()
    for spec in catalog(settings):
        channel_id = _channel_id(spec, ns)
        topic = contract.topics.get(spec.name)
        event_types = sorted(topic.event_types) if topic else []
        used.update(event_types)
        channel: dict[str, Any] = {
            "address": spec.name,
            "description": spec.description,
            "messages": {
                event_type.replace(".", "-"): {"$ref": f"#/components/messages/{event_type}"}
                for event_type in event_types
            },
            "bindings": {
                "kafka": {
                    "topic": spec.name,
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
        if spec.name.endswith(".deadletter.v1"):
            channel["x-deadletter-headers"] = _deadletter_headers_schema()
        channels[channel_id] = channel
        if event_types:
            refs = [
                {"$ref": f"#/channels/{channel_id}/messages/{t.replace('.', '-')}"}
                for t in event_types
            ]
            for action in ("send", "receive"):
                operations[f"{action}-{channel_id}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{channel_id}"},
                    "summary": f"{action.capitalize()} events on {spec.name} (key: {spec.key}).",
                    "messages": refs,
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
