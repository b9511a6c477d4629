"""docs/asyncapi.yaml is generated from the code and kept in step with it."""

from __future__ import annotations

from typing import Any

import yaml

from schemas.registry import event_schemas
from streams.asyncapi import DOCUMENT, document, reference_settings, render
from streams.cloudevents import REQUIRED_HEADERS
from streams.topics import catalog


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    return []


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_committed_document_matches_the_code() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == render(), (
        "docs/asyncapi.yaml is stale: run `safepassage docs asyncapi`"
    )


def test_every_topic_is_a_channel_and_every_event_a_message() -> None:
    doc = yaml.safe_load(render())
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert addresses == {spec.name for spec in catalog(reference_settings())}
    assert set(doc["components"]["messages"]) == set(event_schemas().event_types)


def test_every_reference_resolves() -> None:
    doc = document(reference_settings())
    for ref in refs(doc):
        assert ref.startswith("#/")
        assert resolve(doc, ref) is not None, ref


def test_messages_carry_the_avro_schema_and_cloudevents_headers() -> None:
    doc = document(reference_settings())
    headers = doc["components"]["schemas"]["CloudEventsHeaders"]
    assert headers["required"] == list(REQUIRED_HEADERS)
    message = doc["components"]["messages"]["referral.offered"]
    assert message["payload"]["schema"] == event_schemas().current("referral.offered").definition
    assert message["payload"]["schemaFormat"].startswith("application/vnd.apache.avro")


def test_referral_channels_are_keyed_by_provider_and_intake_by_survivor() -> None:
    doc = document(reference_settings())
    assert doc["channels"]["referrals-housing"]["x-key"] == "provider id"
    assert doc["channels"]["intake"]["x-key"] == "survivor id"
    assert doc["channels"]["intake"]["bindings"]["kafka"]["replicas"] == 3
