"""The pure provisioning plan: create what is missing, report drift, nothing else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.provisioning import ObservedTopic, plan
from streams.settings import KafkaSettings
from streams.topics import TopicSpec, catalog

SPECS = catalog(KafkaSettings())


def observed_as_desired(spec: TopicSpec) -> ObservedTopic:
    return ObservedTopic(spec.name, spec.partitions, spec.replication_factor, dict(spec.config()))


def test_empty_cluster_creates_everything() -> None:
    result = plan(SPECS, {})
    assert result.create == SPECS
    assert result.in_order == ()
    assert result.drift == ()


def test_matching_cluster_needs_nothing() -> None:
    result = plan(SPECS, {s.name: observed_as_desired(s) for s in SPECS})
    assert result.create == ()
    assert set(result.in_order) == {s.name for s in SPECS}


def test_each_kind_of_drift_is_reported_with_a_remedy() -> None:
    intake = SPECS[0]
    config = dict(intake.config())
    config["retention.ms"] = "604800000"
    del config["min.insync.replicas"]
    observed = {intake.name: ObservedTopic(intake.name, 3, 2, config)}

    result = plan([intake], observed)

    found = {d.setting: d for d in result.drift}
    assert set(found) == {"partitions", "replication factor", "retention.ms", "min.insync.replicas"}
    assert found["partitions"].expected == str(intake.partitions)
    assert found["partitions"].actual == "3"
    assert "left as is" in found["partitions"].remedy
    assert found["min.insync.replicas"].actual == "(unset)"
    assert "--add-config retention.ms=-1" in found["retention.ms"].remedy
    assert result.create == ()


@st.composite
def cluster_states(draw: st.DrawFn) -> dict[str, ObservedTopic]:
    observed: dict[str, ObservedTopic] = {}
    for spec in SPECS:
        kind = draw(st.sampled_from(["missing", "same", "drifted"]))
        if kind == "same":
            observed[spec.name] = observed_as_desired(spec)
        elif kind == "drifted":
            observed[spec.name] = ObservedTopic(
                spec.name,
                draw(st.integers(1, 50)),
                draw(st.integers(1, 5)),
                {"cleanup.policy": draw(st.sampled_from(["delete", "compact"]))},
            )
    extra = draw(st.lists(st.text("abcdef", min_size=1, max_size=8), max_size=3))
    for name in extra:
        observed[f"unrelated.{name}"] = ObservedTopic(f"unrelated.{name}", 1, 1, {})
    return observed


@given(cluster_states())
def test_plan_partitions_the_catalog_and_never_touches_existing_topics(
    observed: dict[str, ObservedTopic],
) -> None:
    result = plan(SPECS, observed)

    created = {s.name for s in result.create}
    drifted = {d.topic for d in result.drift}
    in_order = set(result.in_order)
    assert created | drifted | in_order == {s.name for s in SPECS}
    assert not (created & drifted) and not (created & in_order) and not (drifted & in_order)
    assert not created & set(observed)  # an existing topic is never (re)created
