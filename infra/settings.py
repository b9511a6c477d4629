"""Settings of the local broker launcher (environment prefix ``SAFEPASSAGE_BROKER_``)."""

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class BrokerSettings(BaseSettings):
    """Where and how the development broker runs.

    Every field can be set by the environment variable named in its
    description; the defaults fit one developer machine.
    """

    model_config = SettingsConfigDict(env_prefix="SAFEPASSAGE_BROKER_", frozen=True)

    state_dir: Path = Field(
        default=Path(".state/kafka"),
        description="SAFEPASSAGE_BROKER_STATE_DIR: data, logs and PID files (git-ignored).",
    )
    host: str = Field(default="127.0.0.1", description="SAFEPASSAGE_BROKER_HOST: loopback only.")
    port: int = Field(
        default=9092,
        ge=1,
        le=65535,
        description="SAFEPASSAGE_BROKER_PORT: single-node client port.",
    )
    controller_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="SAFEPASSAGE_BROKER_CONTROLLER_PORT: KRaft controller port (default port + 1).",
    )
    cluster_base_port: int = Field(
        default=19092,
        ge=1,
        le=65000,
        description=(
            "SAFEPASSAGE_BROKER_CLUSTER_BASE_PORT: node N of the cluster listens on base + N - 1, "
            "its controller on base + 100 + N - 1, its inter-broker listener (secured) on "
            "base + 200 + N - 1."
        ),
    )
    internal_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description=(
            "SAFEPASSAGE_BROKER_INTERNAL_PORT: the nodes' mutual-TLS listener of a secured "
            "single node (default port + 2; a cluster uses base + 200 + N - 1)."
        ),
    )
    security: Literal["sasl_ssl", "plaintext"] = Field(
        default="sasl_ssl",
        description=(
            "SAFEPASSAGE_BROKER_SECURITY: sasl_ssl (SCRAM-SHA-512 over TLS, ACLs enforced: the "
            "default) or plaintext (no authentication, no authorizer: the fast test tier only, "
            "and only on a loopback host)."
        ),
    )
    heap: str = Field(default="512m", description="SAFEPASSAGE_BROKER_HEAP: JVM -Xmx per node.")
    start_timeout_s: float = Field(
        default=90.0, gt=0, description="SAFEPASSAGE_BROKER_START_TIMEOUT_S: wait for metadata."
    )
    stop_timeout_s: float = Field(
        default=30.0, gt=0, description="SAFEPASSAGE_BROKER_STOP_TIMEOUT_S: then SIGKILL."
    )
    java: str = Field(default="java", description="SAFEPASSAGE_BROKER_JAVA: java executable.")
    mvn: str = Field(default="mvn", description="SAFEPASSAGE_BROKER_MVN: Maven executable.")

    @model_validator(mode="after")
    def _plaintext_only_on_loopback(self) -> "BrokerSettings":
        """An unauthenticated broker must never listen where another machine can reach it."""
        if self.security == "plaintext" and not is_loopback(self.host):
            raise ValueError(
                f"security=plaintext is allowed on a loopback host only, not {self.host!r}"
            )
        return self

    @property
    def secured(self) -> bool:
        return self.security == "sasl_ssl"

    @property
    def security_dir(self) -> Path:
        """The CA, the principals' credentials and their client files (owner-only)."""
        return (self.state_dir / "security").resolve()

    @property
    def resolved_internal_port(self) -> int:
        """The single node's mutual-TLS listener: explicit, or the client port plus two."""
        return self.internal_port if self.internal_port is not None else self.port + 2

    @property
    def resolved_controller_port(self) -> int:
        """The controller port: explicit, or the client port plus one."""
        return self.controller_port if self.controller_port is not None else self.port + 1


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
