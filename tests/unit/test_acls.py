"""The ACL matrix without a broker: the file, the grants it means, the plan against a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.acls import (
    AclMatrixError,
    Grant,
    PrincipalSpec,
    grants,
    load_matrix,
    party_topics,
    plan,
)
from streams.settings import KafkaSettings

SETTINGS = KafkaSettings(topic_namespace="sp", client_id="safepassage")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "acls.yaml"
    path.write_text(text)
    return path


def _of(principal: str) -> set[Grant]:
    return {g for g in grants(load_matrix(), SETTINGS) if g.principal == principal}


def test_the_platform_matrix_grants_each_component_its_own_work_only() -> None:
    router = _of("router")
    assert Grant("router", "topic", "prefixed", "sp.referrals.", "WRITE") in router
    assert Grant("router", "topic", "prefixed", "sp-router-", "ALL") in router
    assert Grant("router", "group", "literal", "sp-router", "READ") in router
    assert Grant("router", "topic", "literal", "sp.intake.v1", "READ") in router
    assert not any(g.name == "sp.intake.v1" and g.operation == "WRITE" for g in router)

    intake = {(g.name, g.operation) for g in _of("intake")}
    assert intake == {
        ("sp.intake.v1", "WRITE"),
        ("sp.intake.v1", "READ"),  # disclosure: the sealed fields it opens for a provider
        ("sp.provider-responses.v1", "WRITE"),  # providers' answers through the intake
        ("sp.audit.v1", "WRITE"),
        ("sp.deadletter.v1", "WRITE"),  # party records the inbound relay refuses
        ("sp.case-status.v1", "READ"),
        ("sp.from.", "READ"),  # every party's own topic, for the inbound relay
        ("sp-inbound-relay", "READ"),
        ("sp.survivor-keys.v1", "READ"),  # the key service: the intake alone holds the keys
        ("sp.survivor-keys.v1", "WRITE"),
        ("sp.providers.v1", "READ"),  # the directory API's read model
        ("sp.providers.v1", "WRITE"),  # directory administrators' changes, providers' capacity
    }
    keys = {
        (g.principal, g.operation)
        for g in grants(load_matrix(), SETTINGS)
        if "survivor-keys" in g.name
    }
    # The intake holds the keys; the router may only write (tombstones of erased survivors).
    assert keys == {("intake", "READ"), ("intake", "WRITE"), ("router", "WRITE")}
    operator = {(g.resource, g.pattern, g.name, g.operation) for g in _of("operator")}
    assert operator == {
        ("topic", "literal", "sp.escalations.v1", "READ"),
        ("group", "prefixed", "safepassage-console-", "READ"),
    }  # people on duty: the feed, and a survivor's status only through the audited intake
    console = {(g.resource, g.pattern, g.name, g.operation) for g in _of("console")}
    assert console == {
        ("topic", "literal", "sp.escalations.v1", "READ"),
        # the console process: funnel counts, directory and live capacity; nothing else
        ("topic", "literal", "sp.case-status.v1", "READ"),
        ("topic", "literal", "sp.providers.v1", "READ"),
        ("topic", "literal", "sp.capacity-ledger.v1", "READ"),
    }


@pytest.mark.parametrize(
    "topic",
    [
        "sp.referrals.",
        "sp.capacity-ledger.v1",
        "sp.case-status.v1",
        "sp.audit.v1",
        "sp.escalation-ticks.v1",
        "sp.escalations.v1",
    ],
)
def test_only_the_router_writes_offers_ledger_status_ticks_and_escalations(topic: str) -> None:
    writers = {
        g.principal
        for g in grants(load_matrix(), SETTINGS)
        if g.name == topic and g.operation in {"WRITE", "ALL"}
    }
    # The intake audits the status reads it answers; every other record is the router's.
    expected = {"router", "intake"} if topic == "sp.audit.v1" else {"router"}
    assert writers == expected


def test_parties_get_their_role_with_their_own_id(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
roles:
  agency: {write: ["{ns}.intake.v1"]}
  provider:
    write: ["{ns}.provider-responses.v1"]
    read: ["{ns}.offers.{id}.*"]
    groups: ["{client_id}-provider-{id}"]
principals:
  agency-north: {role: agency, id: 5b1f7c1e-0d7e-4c36-a3a8-2c9e0f0b6a11}
  provider-shelter: {role: provider, id: shelter-1}
""",
    )
    out = grants(load_matrix(path), SETTINGS)
    assert Grant("agency-north", "topic", "literal", "sp.intake.v1", "WRITE") in out
    assert Grant("provider-shelter", "topic", "prefixed", "sp.offers.shelter-1.", "READ") in out
    assert (
        Grant("provider-shelter", "group", "literal", "safepassage-provider-shelter-1", "READ")
        in out
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("roles: {}\nprincipals: {router: {role: router}}", "unknown role 'router'"),
        ("roles: {agency: {}}\nprincipals: {agency-a: {role: agency}}", "needs its id"),
        ("roles: {r: {}}\nprincipals: {Router: {role: r}}", "not a usable principal name"),
        ("roles: {r: {}}\nprincipals: {kafka-node-1: {role: r}}", "not a usable principal"),
        ("roles: {r: {reed: [x]}}\nprincipals: {}", "Extra inputs are not permitted"),
        ("roles: [", "is not YAML"),
        (
            "roles: {p: {}}\nprincipals: {p-1: {role: p, id: 'a b'}}",
            "String should match pattern",
        ),
    ],
)
def test_a_bad_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AclMatrixError, match=message):
        load_matrix(_write(tmp_path, text))


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AclMatrixError, match="cannot read the ACL file"):
        load_matrix(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{ns}.offers.{id}.*", "bad name template"),  # a component has no id
        ("{nope}", "bad name template"),
        ("*", "must be a name or a prefix"),
        ("a*b", "must be a name or a prefix"),
    ],
)
def test_a_template_that_cannot_be_filled_is_refused(
    tmp_path: Path, template: str, message: str
) -> None:
    path = _write(
        tmp_path, f'roles: {{r: {{read: ["{template}"]}}}}\nprincipals: {{x: {{role: r}}}}'
    )
    with pytest.raises(AclMatrixError, match=message):
        grants(load_matrix(path), SETTINGS)


def test_plan_adds_the_missing_removes_the_ungranted_and_keeps_denials() -> None:
    wanted = Grant("router", "topic", "literal", "sp.intake.v1", "READ")
    stale = Grant("router", "topic", "literal", "sp.intake.v1", "WRITE")
    denial = Grant("intruder", "topic", "prefixed", "sp.", "ALL", "DENY")
    kept = Grant("intake", "topic", "literal", "sp.audit.v1", "WRITE")
    the_plan = plan({wanted, kept}, {stale, denial, kept})
    assert the_plan.add == (wanted,)
    assert the_plan.remove == (stale,)
    assert the_plan.kept_denials == (denial,)
    assert not the_plan.in_sync
    assert plan({wanted}, {wanted, denial}).in_sync


_grants = st.builds(
    Grant,
    st.sampled_from(["router", "intake", "agency-a"]),
    st.sampled_from(["topic", "group"]),
    st.sampled_from(["literal", "prefixed"]),
    st.sampled_from(["sp.intake.v1", "sp.audit.v1", "sp-router"]),
    st.sampled_from(["READ", "WRITE", "ALL"]),
    st.sampled_from(["ALLOW", "DENY"]),
)


@given(st.frozensets(_grants), st.frozensets(_grants))
def test_applying_the_plan_leaves_exactly_the_desired_allows(
    desired: frozenset[Grant], observed: frozenset[Grant]
) -> None:
    desired = frozenset(g for g in desired if g.permission == "ALLOW")
    the_plan = plan(desired, observed)
    after = (set(observed) | set(the_plan.add)) - set(the_plan.remove)
    assert {g for g in after if g.permission == "ALLOW"} == desired
    assert {g for g in after if g.permission == "DENY"} == {
        g for g in observed if g.permission == "DENY"
    }
    assert plan(desired, after).in_sync


def test_a_provider_reads_only_its_own_offer_topic_and_only_delivery_fills_those() -> None:
    a, b = "1d2c3b4a-0000-4000-8000-00000000000a", "1d2c3b4a-0000-4000-8000-00000000000b"
    platform = load_matrix()
    matrix = platform.model_copy(
        update={
            "principals": {
                **platform.principals,
                "provider-a": PrincipalSpec(role="provider", id=a),
                "provider-b": PrincipalSpec(role="provider", id=b),
            }
        }
    )
    out = grants(matrix, SETTINGS)
    provider_a = {
        (g.resource, g.pattern, g.name, g.operation) for g in out if g.principal == "provider-a"
    }
    assert provider_a == {
        ("topic", "prefixed", f"sp.offers.{a}.", "READ"),
        ("topic", "prefixed", f"sp.from.providers.{a}.", "WRITE"),  # its answers, relayed
        ("group", "prefixed", f"safepassage-provider-{a}", "READ"),
    }
    # B's grants reach none of A's topic (the topic name ends ".v1" after the id).
    b_topics = [g.name for g in out if g.principal == "provider-b" and g.resource == "topic"]
    assert b_topics and not any(f"sp.offers.{a}.v1".startswith(name) for name in b_topics)
    fillers = {
        g.principal
        for g in out
        if g.resource == "topic"
        and g.name.startswith("sp.offers")
        and g.operation in {"WRITE", "ALL"}
    }
    assert fillers == {"delivery"}
    assert Grant("delivery", "group", "literal", "sp-offers-relay", "READ") in out


def test_each_party_writes_only_its_own_topic_and_gets_it_created() -> None:
    platform = load_matrix()
    matrix = platform.model_copy(
        update={
            "principals": {
                **platform.principals,
                "agency-north": PrincipalSpec(role="agency", id="north"),
                "agency-north-east": PrincipalSpec(role="agency", id="north-east"),
            }
        }
    )
    out = grants(matrix, SETTINGS)
    north = {
        (g.resource, g.pattern, g.name, g.operation) for g in out if g.principal == "agency-north"
    }
    assert north == {("topic", "prefixed", "sp.from.agencies.north.", "WRITE")}
    # The prefix ends with a dot: "north" does not reach "north-east"'s topic.
    assert not "sp.from.agencies.north-east.v1".startswith("sp.from.agencies.north.")
    writers = {g.principal for g in out if g.name == "sp.intake.v1" and g.operation == "WRITE"}
    assert writers == {"intake"}  # parties reach intake only through the relay's checks
    assert [spec.name for spec in party_topics(matrix, SETTINGS)] == [
        "sp.from.agencies.north.v1",
        "sp.from.agencies.north-east.v1",
    ]


def test_only_the_intake_writes_the_directory_and_only_the_platform_reads_it() -> None:
    access = {
        (g.principal, g.operation)
        for g in grants(load_matrix(), SETTINGS)
        if g.name == "sp.providers.v1"
    }
    assert access == {
        ("intake", "WRITE"),
        ("intake", "READ"),
        ("router", "READ"),
        ("console", "READ"),  # the console's directory view with live capacity
    }
