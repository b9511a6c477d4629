"""``safepassage kafka start|stop|status``: the local Apache Kafka broker (KRaft mode)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import click
from pydantic import SecretStr
from rich.table import Table

from connectors.cli.common import console
from infra import BrokerSettings, Deployment, cluster, single_node
from infra.broker import StartResult
from infra.maven import pinned_kafka_version
from infra.principals import SCRAM_MECHANISM
from streams.settings import KafkaSettings

__all__ = ["kafka", "principal_environment", "principal_settings", "print_started"]


def _deployment(use_cluster: bool) -> Deployment:
    settings = BrokerSettings()
    return cluster(settings) if use_cluster else single_node(settings)


def principal_environment(deployment: Deployment, principal: str) -> dict[str, str]:
    """The ``SAFEPASSAGE_*`` variables with which a service of ours reaches ``deployment``.

    On a secured deployment, as ``principal`` (SCRAM over TLS, trusting the
    local CA); on the plaintext test layout, the address alone.
    """
    environment = {"SAFEPASSAGE_BOOTSTRAP_SERVERS": deployment.bootstrap}
    if deployment.settings.secured:
        environment |= {
            "SAFEPASSAGE_SECURITY_PROTOCOL": "SASL_SSL",
            "SAFEPASSAGE_SASL_MECHANISM": SCRAM_MECHANISM,
            "SAFEPASSAGE_SASL_USERNAME": principal,
            "SAFEPASSAGE_SASL_PASSWORD": deployment.credentials.password(principal),
            "SAFEPASSAGE_SSL_CAFILE": str(deployment.settings.security_dir / "ca.pem"),
        }
    return environment


def principal_settings(
    deployment: Deployment, principal: str, base: KafkaSettings
) -> KafkaSettings:
    """``base`` (namespace, profile...) speaking to ``deployment`` as ``principal``."""
    environment = principal_environment(deployment, principal)
    update: dict[str, object] = {"bootstrap_servers": deployment.bootstrap}
    if deployment.settings.secured:
        update |= {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": SCRAM_MECHANISM,
            "sasl_username": principal,
            "sasl_password": SecretStr(environment["SAFEPASSAGE_SASL_PASSWORD"]),
            "ssl_cafile": Path(environment["SAFEPASSAGE_SSL_CAFILE"]),
        }
    return base.model_copy(update=update)


def print_started(results: Iterable[StartResult]) -> None:
    """One line per node that was started or already ran (also used by ``safepassage run``)."""
    for result in results:
        state = "already running" if result.already_running else "started"
        console().print(
            f"kafka node {result.node_id} {state} on {result.bootstrap} (pid {result.pid})"
        )


_cluster_option = click.option(
    "--cluster", "use_cluster", is_flag=True, help="The three-node cluster instead of one node."
)
_node_option = click.option(
    "--node", "nodes", type=int, multiple=True, help="Only this node (repeatable; cluster mode)."
)


@click.group("kafka")
def kafka() -> None:
    """Run the local Apache Kafka broker (KRaft mode, loopback only)."""


@kafka.command("start")
@_cluster_option
@_node_option
def kafka_start(use_cluster: bool, nodes: tuple[int, ...]) -> None:
    """Start the broker (idempotent) and wait until it answers."""
    deployment = _deployment(use_cluster)
    print_started(deployment.start(nodes or None))
    console().print(f"bootstrap servers: {deployment.bootstrap}")
    if deployment.settings.secured:
        console().print(
            f"SASL_SSL (SCRAM-SHA-512), ACLs enforced; client files of each principal in "
            f"{deployment.settings.security_dir / 'clients'} (owner-only)"
        )


@kafka.command("stop")
@_cluster_option
@_node_option
def kafka_stop(use_cluster: bool, nodes: tuple[int, ...]) -> None:
    """Stop the broker cleanly by its PID."""
    deployment = _deployment(use_cluster)
    stopped = deployment.stop(nodes or None)
    if stopped:
        console().print("stopped kafka node(s): " + ", ".join(map(str, stopped)))
    else:
        console().print("kafka is not running")


@kafka.command("status")
@_cluster_option
def kafka_status(use_cluster: bool) -> None:
    """Show each node's PID and whether it answers; exit 3 when none runs."""
    deployment = _deployment(use_cluster)
    statuses = deployment.status()
    table = Table("node", "bootstrap", "pid", "answers", title=f"kafka ({deployment.name})")
    for status in statuses:
        table.add_row(
            str(status.node_id),
            status.bootstrap,
            str(status.pid) if status.pid else "-",
            "yes" if status.answering else "no",
        )
    console().print(table)
    console().print(f"Apache Kafka {pinned_kafka_version()} (pinned in infra/kafka/pom.xml)")
    if not any(status.pid for status in statuses):
        sys.exit(3)
