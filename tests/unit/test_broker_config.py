"""The launcher's pure parts: node configuration, PID checks, error messages."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

import pytest

from infra import BrokerSettings, ToolMissingError, cluster, single_node
from infra.broker import new_cluster_id
from infra.maven import (
    explain_maven_failure,
    pinned_kafka_version,
    require_tool,
    resolve_classpath,
)


def properties(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_single_node_is_a_combined_kraft_node_on_loopback(tmp_path: Path) -> None:
    settings = BrokerSettings(state_dir=tmp_path, port=29092, security="plaintext")
    node = single_node(settings).nodes[0]
    props = properties(node.render_properties())

    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert "authorizer.class.name" not in props
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"
    assert Path(props["log.dirs"]).is_relative_to(tmp_path.resolve())


def test_cluster_nodes_share_a_quorum_and_replicate_three_ways(tmp_path: Path) -> None:
    deployment = cluster(BrokerSettings(state_dir=tmp_path, cluster_base_port=30000))
    all_props = [properties(node.render_properties()) for node in deployment.nodes]

    assert [p["node.id"] for p in all_props] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in all_props} == {
        "1@127.0.0.1:30100,2@127.0.0.1:30101,3@127.0.0.1:30102"
    }
    assert [n.port for n in deployment.nodes] == [30000, 30001, 30002]
    assert all(p["transaction.state.log.min.isr"] == "2" for p in all_props)
    assert deployment.bootstrap == "127.0.0.1:30000,127.0.0.1:30001,127.0.0.1:30002"
    assert len({n.directory for n in deployment.nodes}) == 3


def test_a_pid_file_naming_another_process_is_stale_and_removed(tmp_path: Path) -> None:
    node = single_node(BrokerSettings(state_dir=tmp_path)).nodes[0]
    node.directory.mkdir(parents=True)
    node.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not this node's JVM

    assert node.pid() is None
    assert not node.pid_file.exists()


def test_a_pid_file_of_a_dead_process_or_garbage_is_stale(tmp_path: Path) -> None:
    node = single_node(BrokerSettings(state_dir=tmp_path)).nodes[0]
    node.directory.mkdir(parents=True)
    node.pid_file.write_text("not-a-pid\n")
    assert node.pid() is None
    node.pid_file.write_text("4194304\n")  # above Linux's pid_max
    assert node.pid() is None


def test_stop_and_status_of_a_deployment_that_never_ran(tmp_path: Path) -> None:
    deployment = single_node(BrokerSettings(state_dir=tmp_path, port=1))
    assert deployment.stop() == []
    assert [s.pid for s in deployment.status()] == [None]


def test_missing_java_is_one_clear_paragraph(tmp_path: Path) -> None:
    settings = BrokerSettings(state_dir=tmp_path, java="/nonexistent/java")
    with pytest.raises(ToolMissingError) as caught:
        single_node(settings).start()
    message = str(caught.value)
    assert "java was not found" in message
    assert "SAFEPASSAGE_BROKER_JAVA" in message
    assert "\n" not in message


def test_missing_maven_is_reported_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ToolMissingError, match="mvn was not found"):
        resolve_classpath(tmp_path, mvn="/nonexistent/mvn")
    assert list(tmp_path.iterdir()) == []


def test_unreachable_maven_central_is_explained() -> None:
    output = (
        "[ERROR] Failed to execute goal on project kafka-broker: Could not resolve dependencies "
        "for project org.safepassage.infra:kafka-broker:pom:1: Could not transfer artifact "
        "org.apache.kafka:kafka_2.13:pom:4.1.1 from/to central (https://repo.maven.apache.org/"
        "maven2): Unknown host repo.maven.apache.org -> [Help 1]\n[ERROR] \n[ERROR] To see..."
    )
    message = explain_maven_failure(output)
    assert message.startswith("Could not fetch the Apache Kafka broker jars: Maven Central")
    assert "Unknown host" in message
    assert "\n" not in message


def test_require_tool_finds_real_executables() -> None:
    assert Path(require_tool("python", "python3")).exists()


def test_the_pinned_broker_is_kafka_4() -> None:
    assert pinned_kafka_version().startswith("4.")


def test_cluster_ids_never_start_with_a_dash_over_many_draws() -> None:
    """About one raw draw in 64 starts with "-"; the storage tool read it as an option."""
    ids = [new_cluster_id() for _ in range(20_000)]

    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids)
    for cluster_id in ids[:2000]:
        assert len(cluster_id) == 22
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_a_draw_that_starts_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))  # 0b111110.. is "-" in URL-safe base64
    plain = uuid.UUID(bytes=b"\x00" + bytes(15))
    draws = iter([dashed, dashed, plain])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))  # the launcher calls uuid.uuid4()

    assert new_cluster_id() == base64.urlsafe_b64encode(plain.bytes).rstrip(b"=").decode()
    assert base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")


def test_by_default_a_node_authenticates_every_listener_and_denies_without_an_acl(
    tmp_path: Path,
) -> None:
    node = single_node(BrokerSettings(state_dir=tmp_path, port=29092)).nodes[0]
    props = properties(node.render_properties())

    assert props["listeners"] == (
        "CLIENTS://127.0.0.1:29092,INTERNAL://127.0.0.1:29094,CONTROLLER://127.0.0.1:29093"
    )
    assert props["listener.security.protocol.map"] == (
        "CLIENTS:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL"
    )
    assert "PLAINTEXT" not in props["listener.security.protocol.map"]
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.internal.ssl.client.auth"] == "required"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:kafka-node-1;User:admin"
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    assert Path(props["ssl.truststore.location"]).is_relative_to(tmp_path.resolve())
    assert "password" not in node.render_properties().lower()


def test_a_secured_cluster_trusts_each_of_its_nodes(tmp_path: Path) -> None:
    deployment = cluster(BrokerSettings(state_dir=tmp_path, cluster_base_port=30000))
    all_props = [properties(node.render_properties()) for node in deployment.nodes]

    assert {p["super.users"] for p in all_props} == {
        "User:kafka-node-1;User:kafka-node-2;User:kafka-node-3;User:admin"
    }
    assert [n.ports for n in deployment.nodes] == [
        (30000, 30100, 30200),
        (30001, 30101, 30201),
        (30002, 30102, 30202),
    ]
    assert len({p["ssl.keystore.location"] for p in all_props}) == 3


def test_plaintext_is_refused_on_a_host_other_machines_can_reach() -> None:
    with pytest.raises(ValueError, match="loopback host only"):
        BrokerSettings(host="0.0.0.0", security="plaintext")  # noqa: S104 - the point
    assert BrokerSettings(host="::1", security="plaintext").host == "::1"
    assert BrokerSettings(host="0.0.0.0").secured  # noqa: S104 - secured may listen anywhere
