"""The intake service's settings, read once at start from the environment.

They live apart from the app so that the CLI, the app factory and tests can
build and validate them without importing FastAPI or Kafka code paths.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.settings import is_loopback
from processors.disclosure import DisclosurePolicy
from schemas.personal import PersonalField
from schemas.types import ServiceCategory

__all__ = ["IntakeSettings"]


class IntakeSettings(BaseSettings):
    """Everything the intake service reads at start (prefix ``SAFEPASSAGE_INTAKE_``).

    Kafka itself is configured by :class:`~streams.settings.KafkaSettings`
    (``SAFEPASSAGE_BOOTSTRAP_SERVERS`` ...), shared with every service. The
    keys file is platform-wide rather than the intake's own and keeps its
    ``SAFEPASSAGE_`` name.
    """

    model_config = SettingsConfigDict(
        env_prefix="SAFEPASSAGE_INTAKE_", frozen=True, populate_by_name=True
    )

    host: str = Field(default="127.0.0.1", description="SAFEPASSAGE_INTAKE_HOST.")
    port: int = Field(default=8080, ge=1, le=65535, description="SAFEPASSAGE_INTAKE_PORT.")
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="SAFEPASSAGE_INTAKE_MAX_BODY_BYTES: larger request bodies get 413.",
    )
    max_import_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description=("SAFEPASSAGE_INTAKE_MAX_IMPORT_BYTES: larger HSDS directory imports get 413."),
    )
    max_batch_items: int = Field(
        default=100, ge=1, description="SAFEPASSAGE_INTAKE_MAX_BATCH_ITEMS: events per batch."
    )
    max_in_flight: int = Field(
        default=1000,
        ge=1,
        description=(
            "SAFEPASSAGE_INTAKE_MAX_IN_FLIGHT: events being published at once; "
            "more get 429 with Retry-After (backpressure)."
        ),
    )
    publish_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="SAFEPASSAGE_INTAKE_PUBLISH_TIMEOUT_S: wait for the broker's ack, then 503.",
    )
    state_dir: Path = Field(
        default=Path(".state/intake"),
        description="SAFEPASSAGE_INTAKE_STATE_DIR: holds the idempotency store (SQLite).",
    )
    idempotency_ttl: timedelta = Field(
        default=timedelta(days=7),
        description=(
            "SAFEPASSAGE_INTAKE_IDEMPOTENCY_TTL: how long a (source, id) is remembered "
            "(seconds or ISO 8601, e.g. P7D)."
        ),
    )
    idempotency_max_entries: int = Field(
        default=1_000_000,
        ge=1,
        description="SAFEPASSAGE_INTAKE_IDEMPOTENCY_MAX_ENTRIES: bound of the store.",
    )
    keystore_dir: Path | None = Field(
        default=None,
        description=(
            "SAFEPASSAGE_INTAKE_KEYSTORE_DIR: the owner-only file keystore whose "
            "key-encryption keys wrap survivors' data keys (docs/keys.md); "
            "default: keystore/ in the state directory."
        ),
    )
    tls_certfile: Path | None = Field(
        default=None,
        description=(
            "SAFEPASSAGE_INTAKE_TLS_CERTFILE: PEM certificate chain to serve (with the key, "
            "unless SAFEPASSAGE_INTAKE_TLS_KEYFILE names it); default: a certificate for the "
            "host issued by the local CA of `make run` (.state/kafka/security/ca.pem)."
        ),
    )
    tls_keyfile: Path | None = Field(
        default=None, description="SAFEPASSAGE_INTAKE_TLS_KEYFILE: the PEM private key."
    )
    plaintext: bool = Field(
        default=False,
        description=(
            "SAFEPASSAGE_INTAKE_PLAINTEXT: serve HTTP without TLS (bearer keys and personal "
            "data in clear): allowed on a loopback host only, for tests."
        ),
    )
    disclose: dict[ServiceCategory, frozenset[PersonalField]] = Field(
        default_factory=dict,
        description=(
            "SAFEPASSAGE_INTAKE_DISCLOSE: JSON object, service category to the personal "
            'fields its providers receive, e.g. {"HOUSING": ["name", "contact"]}; a '
            "category not named keeps its default allowlist (PRIVACY.md)."
        ),
    )
    api_keys_file: Path = Field(
        default=Path(".state/api-keys.yaml"),
        validation_alias="SAFEPASSAGE_API_KEYS_FILE",
        description="SAFEPASSAGE_API_KEYS_FILE: YAML file of hashed API keys.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> IntakeSettings:
        """A batch larger than the in-flight limit could never be accepted."""
        if self.max_batch_items > self.max_in_flight:
            raise ValueError("max_batch_items must not exceed max_in_flight")
        if self.idempotency_ttl <= timedelta(0):
            raise ValueError("idempotency_ttl must be positive")
        if self.plaintext and not is_loopback(self.host):
            raise ValueError(
                f"plaintext is allowed on a loopback host only, not {self.host!r}: "
                "bearer keys and personal data must not cross a network in clear"
            )
        if self.tls_keyfile is not None and self.tls_certfile is None:
            raise ValueError("tls_keyfile needs tls_certfile")
        return self

    @property
    def disclosure_policy(self) -> DisclosurePolicy:
        """The default allowlists with :attr:`disclose` laid over them."""
        return DisclosurePolicy.with_overrides(self.disclose)

    @property
    def keystore_path(self) -> Path:
        """Where the file keystore lives (:attr:`keystore_dir`, else in the state directory)."""
        return self.keystore_dir or self.state_dir / "keystore"

    @property
    def idempotency_lease(self) -> timedelta:
        """How long a pending claim blocks others: well past the longest publish."""
        return timedelta(seconds=max(60.0, 3 * self.publish_timeout_s))
