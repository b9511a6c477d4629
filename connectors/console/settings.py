"""The operator console's settings, read once at start from the environment.

Apart from the app, like the intake's, so that the command line and tests
build and validate them without importing FastAPI or Kafka code paths.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.settings import is_loopback

__all__ = ["ConsoleSettings"]


class ConsoleSettings(BaseSettings):
    """Everything ``safepassage console serve`` reads at start (prefix ``SAFEPASSAGE_CONSOLE_``).

    Kafka is configured by :class:`~streams.settings.KafkaSettings` like every
    service (the console runs as its own ``console`` principal); the keys file is
    the intake's, platform-wide, under its ``SAFEPASSAGE_`` name.
    """

    model_config = SettingsConfigDict(
        env_prefix="SAFEPASSAGE_CONSOLE_", frozen=True, populate_by_name=True
    )

    host: str = Field(default="127.0.0.1", description="SAFEPASSAGE_CONSOLE_HOST.")
    port: int = Field(default=8443, ge=1, le=65535, description="SAFEPASSAGE_CONSOLE_PORT.")
    intake_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://127.0.0.1:8080"),
        description=(
            "SAFEPASSAGE_CONSOLE_INTAKE_URL: the intake API, where status lookups go with "
            "the signed-in operator's own key."
        ),
    )
    intake_ca_file: Path | None = Field(
        default=None,
        description=(
            "SAFEPASSAGE_CONSOLE_INTAKE_CA_FILE: PEM bundle that signed the intake's "
            "certificate; default: the local CA of `make run` (.state/kafka/security/ca.pem)."
        ),
    )
    intake_timeout_s: float = Field(
        default=15.0, gt=0, le=120, description="SAFEPASSAGE_CONSOLE_INTAKE_TIMEOUT_S."
    )
    state_dir: Path = Field(
        default=Path(".state/console"),
        description="SAFEPASSAGE_CONSOLE_STATE_DIR: holds the console's TLS certificate.",
    )
    tls_certfile: Path | None = Field(
        default=None,
        description=(
            "SAFEPASSAGE_CONSOLE_TLS_CERTFILE: PEM certificate chain to serve (with the key, "
            "unless SAFEPASSAGE_CONSOLE_TLS_KEYFILE names it); default: a certificate for the "
            "host issued by the local CA of `make run`, as the intake gets its own."
        ),
    )
    tls_keyfile: Path | None = Field(
        default=None, description="SAFEPASSAGE_CONSOLE_TLS_KEYFILE: the PEM private key."
    )
    plaintext: bool = Field(
        default=False,
        description=(
            "SAFEPASSAGE_CONSOLE_PLAINTEXT: serve HTTP without TLS: loopback hosts only, for "
            "tests (browsers keep Secure cookies on http://localhost and 127.0.0.1 only)."
        ),
    )
    session_idle_s: int = Field(
        default=30 * 60,
        ge=60,
        description="SAFEPASSAGE_CONSOLE_SESSION_IDLE_S: a session unused this long ends.",
    )
    session_max_s: int = Field(
        default=8 * 3600,
        ge=60,
        description="SAFEPASSAGE_CONSOLE_SESSION_MAX_S: a session ends this long after sign-in.",
    )
    max_sessions: int = Field(
        default=1000, ge=1, description="SAFEPASSAGE_CONSOLE_MAX_SESSIONS: the oldest go first."
    )
    recent_escalations: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="SAFEPASSAGE_CONSOLE_RECENT_ESCALATIONS: how many the feed shows on opening.",
    )
    api_keys_file: Path = Field(
        default=Path(".state/api-keys.yaml"),
        validation_alias="SAFEPASSAGE_API_KEYS_FILE",
        description="SAFEPASSAGE_API_KEYS_FILE: the intake's YAML file of hashed API keys.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ConsoleSettings:
        """Keys and session cookies cross this connection: clear text stays on loopback."""
        if self.plaintext and not is_loopback(self.host):
            raise ValueError(
                f"plaintext is allowed on a loopback host only, not {self.host!r}: "
                "operator keys and session cookies must not cross a network in clear"
            )
        if self.tls_keyfile is not None and self.tls_certfile is None:
            raise ValueError("tls_keyfile needs tls_certfile")
        if self.session_idle_s > self.session_max_s:
            raise ValueError("session_idle_s must not exceed session_max_s")
        return self

    @property
    def intake_base(self) -> str:
        """The intake's URL without a trailing slash."""
        return str(self.intake_url).rstrip("/")
