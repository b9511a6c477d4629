"""How a secured broker node listens, authenticates and authorises.

Three listeners, each with one job:

* ``CLIENTS`` (SASL_SSL, SCRAM-SHA-512) is the only one our services and
  parties use; every connection is a named principal.
* ``INTERNAL`` (SSL with a required client certificate) carries the
  replication between nodes and the launcher's own admin calls; its
  principals are the nodes (``kafka-node-N``, the certificate's CN), super
  users. It needs no password, so the launcher can create the SCRAM users
  (which live in the cluster's metadata) without writing one anywhere.
* ``CONTROLLER`` (SSL with a required client certificate) is KRaft's quorum
  listener, between the same node principals.

Kafka's ``StandardAuthorizer`` decides, with ``allow.everyone.if.no.acl.found``
false: a principal without an ACL can do nothing. This module only renders
properties; the files they name come from :mod:`infra.tls`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from infra.principals import NODE_PRINCIPAL_PREFIX, SCRAM_MECHANISM
from infra.tls import TlsFiles

__all__ = ["ADMIN_PRINCIPAL", "NodeSecurity", "node_principal", "secured_properties"]

ADMIN_PRINCIPAL = "admin"
"""The operators' provisioning principal (topics, ACLs, credentials): a super user."""


def node_principal(node_id: int) -> str:
    """A node's principal name: the CN of its certificate."""
    return f"{NODE_PRINCIPAL_PREFIX}{node_id}"


@dataclass(frozen=True)
class NodeSecurity:
    """What a secured node needs beyond the plaintext layout: its TLS files and internal port."""

    tls: TlsFiles
    internal_port: int
    node_ids: tuple[int, ...]
    """Every node of the deployment: each is a super user on the others."""

    def super_users(self) -> str:
        users = [node_principal(node_id) for node_id in self.node_ids] + [ADMIN_PRINCIPAL]
        return ";".join(f"User:{user}" for user in users)

    def admin_config(self, host: str) -> dict[str, str]:
        """librdkafka settings of the launcher's admin client: the node's certificate, INTERNAL."""
        return {
            "bootstrap.servers": f"{host}:{self.internal_port}",
            "security.protocol": "SSL",
            "ssl.ca.location": str(self.tls.ca),
            "ssl.certificate.location": str(self.tls.keystore),
            "ssl.key.location": str(self.tls.keystore),
        }


def secured_properties(
    host: str, port: int, controller_port: int, security: NodeSecurity
) -> dict[str, str]:
    """The listener, TLS, SASL and authorizer properties of one secured node."""
    jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return {
        "listeners": (
            f"CLIENTS://{host}:{port},INTERNAL://{host}:{security.internal_port},"
            f"CONTROLLER://{host}:{controller_port}"
        ),
        "advertised.listeners": (
            f"CLIENTS://{host}:{port},INTERNAL://{host}:{security.internal_port}"
        ),
        "listener.security.protocol.map": "CLIENTS:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL",
        "inter.broker.listener.name": "INTERNAL",
        "controller.listener.names": "CONTROLLER",
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "listener.name.clients.sasl.enabled.mechanisms": SCRAM_MECHANISM,
        f"listener.name.clients.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": jaas,
        "listener.name.internal.ssl.client.auth": "required",
        "listener.name.controller.ssl.client.auth": "required",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(security.tls.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(security.tls.ca),
        "ssl.endpoint.identification.algorithm": "https",
        # The certificate's subject is "CN=kafka-node-N,O=...": the principal is its CN.
        "ssl.principal.mapping.rules": r"RULE:^CN=([a-z0-9-]+),.*$/$1/,DEFAULT",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": security.super_users(),
    }


def client_hosts(hosts: Iterable[str]) -> tuple[str, ...]:
    """The names a node's certificate must carry: its host, and loopback's usual names."""
    return tuple(dict.fromkeys([*hosts, "127.0.0.1", "localhost"]))


def ca_path(security_dir: Path) -> Path:
    return security_dir / "ca.pem"
