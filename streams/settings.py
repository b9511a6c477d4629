"""Kafka client settings shared by every SafePassage service (prefix ``SAFEPASSAGE_``)."""

from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.exceptions import SettingsError


class Profile(StrEnum):
    """Durability profile of the topic catalog."""

    DEV = "dev"
    """One broker: replication factor 1, min.insync.replicas 1."""
    PRODUCTION = "production"
    """Three or more brokers: replication factor 3, min.insync.replicas 2."""


class LogFormat(StrEnum):
    """How log lines are rendered."""

    AUTO = "auto"
    """Readable console output on a TTY, JSON lines otherwise."""
    JSON = "json"
    CONSOLE = "console"


class KafkaSettings(BaseSettings):
    """How a service reaches Kafka and which topics it expects (read once, then passed on)."""

    model_config = SettingsConfigDict(env_prefix="SAFEPASSAGE_", frozen=True)

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="SAFEPASSAGE_BOOTSTRAP_SERVERS: host:port[,...]."
    )
    client_id: str = Field(default="safepassage", description="SAFEPASSAGE_CLIENT_ID.")
    profile: Profile = Field(
        default=Profile.DEV, description="SAFEPASSAGE_PROFILE: dev or production durability."
    )
    topic_namespace: str = Field(
        default="safepassage",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="SAFEPASSAGE_TOPIC_NAMESPACE: first part of every topic name.",
    )
    partitions: int = Field(
        default=6,
        ge=1,
        le=1000,
        description=(
            "SAFEPASSAGE_PARTITIONS: partitions of the survivor-keyed topics (all the same, "
            "so intake and provider responses stay co-partitioned)."
        ),
    )
    security_protocol: str = Field(
        default="PLAINTEXT", description="SAFEPASSAGE_SECURITY_PROTOCOL (e.g. SASL_SSL)."
    )
    sasl_mechanism: str | None = Field(default=None, description="SAFEPASSAGE_SASL_MECHANISM.")
    sasl_username: str | None = Field(default=None, description="SAFEPASSAGE_SASL_USERNAME.")
    sasl_password: SecretStr | None = Field(default=None, description="SAFEPASSAGE_SASL_PASSWORD.")
    ssl_cafile: Path | None = Field(
        default=None,
        description=(
            "SAFEPASSAGE_SSL_CAFILE: PEM file of the CA that signed the brokers' certificates "
            "(SSL and SASL_SSL); the system's trust store when unset."
        ),
    )
    log_format: LogFormat = Field(default=LogFormat.AUTO, description="SAFEPASSAGE_LOG_FORMAT.")
    log_level: str = Field(default="INFO", description="SAFEPASSAGE_LOG_LEVEL.")

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings of every confluent-kafka client (others: :mod:`streams.clients`)."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_cafile is not None:
            config["ssl.ca.location"] = str(self.ssl_cafile)
        return config


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def read_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Settings from the environment, or :class:`SettingsError` naming each bad variable.

    Never their values: a value may be a password. ``overrides`` (a
    command's options) take precedence over the environment; one that is
    None was not given and leaves the variable's value.
    """
    try:
        return cls(**{name: value for name, value in overrides.items() if value is not None})
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        problems = "; ".join(
            f"{prefix}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise SettingsError(f"invalid settings: {problems}") from None
