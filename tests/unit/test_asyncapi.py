"""docs/asyncapi.yaml is generated from the code and kept in step with it."""

from __future__ import annotations

from typing import Any

import yaml

from schemas.registry import event_schemas
from streams.asyncapi import DOCUMENT, document, reference_settings, render
from streams.cloudevents import REQUIRED_HEADERS
from streams.contract import Contract
from streams.topics import Topics, catalog


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
    per_party = {a for a in addresses if "{" in a}
    assert addresses - per_party == {spec.name for spec in catalog(reference_settings())}
    assert per_party == {
        "safepassage.offers.{providerId}.v1",
        "safepassage.from.agencies.{agencyId}.v1",
        "safepassage.from.providers.{providerId}.v1",
    }
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


def test_each_per_party_channel_is_what_the_contract_resolves_for_a_real_topic() -> None:
    """The parameterised channels name the topics the relays use and carry their events."""
    settings = reference_settings()
    doc = document(settings)
    contract = Contract(settings)
    provider, agency = "0b4c2a4e-8d53-4a0d-9a51-2f6b0f1c7e55", "agency-north"
    for channel_id, real in (
        ("offers-provider", Topics.of(settings).offers(provider)),
        ("from-agencies", Topics.of(settings).from_party(f"/agencies/{agency}")),
        ("from-providers", Topics.of(settings).from_party(f"/providers/{provider}")),
    ):
        channel = doc["channels"][channel_id]
        address = channel["address"].format(providerId=provider, agencyId=agency)
        assert address == real
        messages = {ref["$ref"].rsplit("/", 1)[1] for ref in channel["messages"].values()}
        assert messages == set(contract.topic(real).event_types), channel_id
        assert set(channel["parameters"]) <= {"providerId", "agencyId"}
