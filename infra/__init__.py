"""Real infrastructure for development and tests: an Apache Kafka broker.

The broker's jars come from Maven Central through the Maven project in
``infra/kafka/``; :mod:`infra.broker` runs them in KRaft mode on loopback,
either as one combined node or as a three-node cluster.
"""

from infra.broker import BrokerNode, Deployment, cluster, single_node
from infra.exceptions import (
    BrokerStartError,
    BrokerStopError,
    DependencyResolutionError,
    InfraError,
    ToolMissingError,
)
from infra.settings import BrokerSettings

__all__ = [
    "BrokerNode",
    "BrokerSettings",
    "BrokerStartError",
    "BrokerStopError",
    "DependencyResolutionError",
    "Deployment",
    "InfraError",
    "ToolMissingError",
    "cluster",
    "single_node",
]
