"""The topic catalog matches DESIGN.md, keeps survivor topics co-partitioned, names every topic.

:class:`Topics` is where every component gets names, and its inbound rule is the one
rule for which topic an agency's or provider's event goes to.
"""

from __future__ import annotations

import pytest

from streams.contract import Contract
from streams.exceptions import UnknownTopicError
from streams.settings import KafkaSettings, Profile
from streams.topics import (
    AGENCY_EVENTS,
    CATEGORIES,
    DIRECTORY_EVENTS,
    ESCALATION_EVENTS,
    OFFER_EVENTS,
    PROVIDER_ANSWERS,
    SHRED_BOUND_MS,
    CleanupPolicy,
    Topics,
    catalog,
    referral_topic,
)

EXPECTED = {
    "safepassage.intake.v1",
    "safepassage.provider-responses.v1",
    "safepassage.providers.v1",
    "safepassage.referrals.housing.v1",
    "safepassage.referrals.health.v1",
    "safepassage.referrals.legal-aid.v1",
    "safepassage.referrals.financial-support.v1",
    "safepassage.escalations.v1",
    "safepassage.case-status.v1",
    "safepassage.audit.v1",
    "safepassage.deadletter.v1",
    "safepassage.capacity-ledger.v1",
    "safepassage.escalation-ticks.v1",
    "safepassage.survivor-keys.v1",
}


def by_name(settings: KafkaSettings) -> dict[str, object]:
    return {spec.name: spec for spec in catalog(settings)}


def test_catalog_has_every_topic_of_the_design() -> None:
    assert set(by_name(KafkaSettings())) == EXPECTED


def test_survivor_keyed_topics_are_co_partitioned() -> None:
    settings = KafkaSettings(partitions=12)
    specs = {spec.name: spec for spec in catalog(settings)}
    survivor_keyed = [s for s in specs.values() if s.key == "survivor id"]
    assert {s.partitions for s in survivor_keyed} == {12}
    assert (
        specs["safepassage.intake.v1"].partitions
        == specs["safepassage.provider-responses.v1"].partitions
    )


def test_directory_and_status_are_compacted_and_facts_are_kept() -> None:
    specs = {spec.name: spec for spec in catalog(KafkaSettings())}
    assert specs["safepassage.providers.v1"].cleanup_policy is CleanupPolicy.COMPACT
    assert specs["safepassage.case-status.v1"].cleanup_policy is CleanupPolicy.COMPACT
    assert specs["safepassage.intake.v1"].config()["retention.ms"] == "-1"
    assert specs["safepassage.intake.v1"].cleanup_policy is CleanupPolicy.DELETE


def test_a_shredded_key_leaves_the_key_topic_within_the_stated_bound() -> None:
    keys = next(s for s in catalog(KafkaSettings()) if s.name.endswith("survivor-keys.v1"))
    config = keys.config()
    assert config["cleanup.policy"] == "compact" and config["min.compaction.lag.ms"] == "0"
    # Roll the segment, compact it, drop the tombstone: each step bounded, the sum stated.
    steps = ("segment.ms", "max.compaction.lag.ms", "delete.retention.ms")
    assert sum(int(config[step]) for step in steps) <= SHRED_BOUND_MS


@pytest.mark.parametrize(
    ("profile", "rf", "min_isr"), [(Profile.DEV, 1, 1), (Profile.PRODUCTION, 3, 2)]
)
def test_durability_follows_the_profile(profile: Profile, rf: int, min_isr: int) -> None:
    for spec in catalog(KafkaSettings(profile=profile)):
        assert spec.replication_factor == rf
        assert spec.config()["min.insync.replicas"] == str(min_isr)


def test_namespace_prefixes_every_topic() -> None:
    settings = KafkaSettings(topic_namespace="staging")
    assert all(spec.name.startswith("staging.") for spec in catalog(settings))
    assert referral_topic(settings, "legal-aid") == "staging.referrals.legal-aid.v1"


def test_every_category_has_a_referral_topic_and_unknown_ones_are_refused() -> None:
    names = set(by_name(KafkaSettings()))
    for category in CATEGORIES:
        assert referral_topic(KafkaSettings(), category) in names
    with pytest.raises(ValueError, match="unknown service category 'dentistry'"):
        referral_topic(KafkaSettings(), "dentistry")


def test_topics_names_every_catalog_topic_once() -> None:
    topics = Topics.of(KafkaSettings(topic_namespace="staging"))
    named = {
        topics.intake,
        topics.provider_responses,
        topics.providers,
        *topics.all_referrals,
        topics.escalations,
        topics.case_status,
        topics.audit,
        topics.capacity_ledger,
        topics.escalation_ticks,
        topics.survivor_keys,
        topics.deadletter,
    }
    assert named == {spec.name for spec in catalog(KafkaSettings(topic_namespace="staging"))}
    assert topics.intake == "staging.intake.v1"
    assert topics.referral("legal-aid") == "staging.referrals.legal-aid.v1"
    with pytest.raises(ValueError, match="unknown service category"):
        topics.referral("dentistry")


def test_the_inbound_rule_sends_agency_events_to_intake_and_answers_to_responses() -> None:
    topics = Topics.of(KafkaSettings(topic_namespace="unit"))
    for event_type in AGENCY_EVENTS:
        assert topics.inbound(event_type) == "unit.intake.v1"
    for event_type in PROVIDER_ANSWERS:
        assert topics.inbound(event_type) == "unit.provider-responses.v1"
    # A cancellation is an agency's (it also travels on referral topics, but not inbound).
    assert topics.inbound("referral.cancelled") == "unit.intake.v1"
    assert dict(topics.inbound_by_type) == {
        t: topics.inbound(t) for t in AGENCY_EVENTS | PROVIDER_ANSWERS
    }


@pytest.mark.parametrize(
    "event_type",
    [*sorted(OFFER_EVENTS - AGENCY_EVENTS | DIRECTORY_EVENTS | ESCALATION_EVENTS), "nonsense"],
)
def test_the_platforms_own_events_have_no_inbound_topic(event_type: str) -> None:
    with pytest.raises(UnknownTopicError, match="not something an agency or provider"):
        Topics.of(KafkaSettings()).inbound(event_type)


def test_the_inbound_rule_agrees_with_each_topics_contract() -> None:
    settings = KafkaSettings()
    contract, topics = Contract(settings), Topics.of(settings)
    for event_type, topic in topics.inbound_by_type.items():
        assert event_type in contract.topic(topic).event_types
