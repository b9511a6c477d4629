"""How the delivery connector runs, and which providers it delivers to.

Two inputs, both read once at start and both frozen: :class:`WebhookSettings`
from ``SAFEPASSAGE_WEBHOOKS_*`` environment variables, and the webhooks file
(:func:`load_providers`) naming every provider that receives webhooks, with
its URL and signing secrets. They live apart from the connector so that
``safepassage deliver webhooks --check`` and the tests can validate a file
without Kafka or HTTP.

The file holds secrets, so every error here names a line, a column or a
field path and the kind of problem, never the offending text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from uuid import UUID

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.exceptions import WebhookConfigError
from connectors.webhooks import MAX_SIGNATURES, check_secret
from processors.unique_keys import load_unique, unique_pairs, yaml_problem

__all__ = ["ProviderEndpoint", "WebhookSettings", "load_providers"]

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class WebhookSettings(BaseSettings):
    """How the delivery connector runs (prefix ``SAFEPASSAGE_WEBHOOKS_``), read once at start."""

    model_config = SettingsConfigDict(env_prefix="SAFEPASSAGE_WEBHOOKS_", frozen=True)

    file: Path = Field(description="YAML (or .json) file of endpoints and secrets.")
    group_id: str = Field(
        default="safepassage-webhooks",
        min_length=1,
        description="Consumer group (its own offsets).",
    )
    max_elapsed_s: float = Field(
        default=3600.0, gt=0, description="Give up when no 2xx came this long after the read."
    )
    initial_backoff_s: float = Field(
        default=1.0, gt=0, description="First backoff window (full jitter)."
    )
    max_backoff_s: float = Field(
        default=300.0, gt=0, description="The backoff window stops growing here."
    )
    timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Request timeout unless a provider sets one."
    )
    max_in_flight: int = Field(
        default=32, ge=1, description="HTTP requests in flight, all providers."
    )
    max_buffered: int = Field(
        default=10_000,
        ge=1,
        description="Records unfinished; above it reading pauses until half are done.",
    )
    poll_interval_s: float = Field(
        default=0.05, gt=0, le=5, description="Pause between empty polls of Kafka."
    )

    @field_validator("file", mode="before")
    @classmethod
    def _named(cls, value: object) -> object:
        """An empty variable would name the current directory, a confusing error later."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("name the webhooks file")
        return value

    @model_validator(mode="after")
    def _backoff_window(self) -> WebhookSettings:
        """A first window above the cap would make the cap meaningless."""
        if self.initial_backoff_s > self.max_backoff_s:
            raise ValueError("initial_backoff_s must not exceed max_backoff_s")
        return self


class ProviderEndpoint(BaseModel):
    """Where and how one provider receives webhooks.

    ``secrets``: Standard Webhooks secrets (``whsec_<base64>``); the first
    is current; list two while rotating (every request is then signed with
    both). Unknown keys are refused, ``jurisdiction`` of earlier builds
    included: nothing routed on it (escalations name the survivor's).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: HttpUrl
    secrets: tuple[SecretStr, ...] = Field(min_length=1, max_length=MAX_SIGNATURES)
    timeout_s: float | None = Field(default=None, gt=0, le=300)

    @field_validator("secrets", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        """``secrets: "..."`` is one secret, not a sequence of characters."""
        return [value] if isinstance(value, str) else value

    @field_validator("secrets")
    @classmethod
    def _standard(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        """Standard Webhooks secrets only (the library would misread others); never shown."""
        for secret in value:
            check_secret(secret.get_secret_value())
        return value

    @field_validator("url")
    @classmethod
    def _https(cls, value: HttpUrl) -> HttpUrl:
        """Referral data crosses networks only encrypted; plain HTTP is for loopback tests."""
        if value.scheme != "https" and (value.host or "") not in _LOOPBACK_HOSTS:
            raise ValueError("the url must use https (http only for 127.0.0.1/localhost)")
        return value


class _ProvidersFile(BaseModel):
    """The whole webhooks file: ``providers: {<provider id>: <endpoint>}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    providers: dict[UUID, ProviderEndpoint] = Field(min_length=1)


def _read_document(path: Path) -> object:
    """The parsed file; errors name the line and column, never the text (it holds secrets)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebhookConfigError(f"cannot read webhooks file {path}: {type(exc).__name__}") from exc
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text, object_pairs_hook=unique_pairs)
        return load_unique(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise WebhookConfigError(f"webhooks file {path} is not JSON ({where})") from None
    except yaml.YAMLError as exc:
        raise WebhookConfigError(f"webhooks file {path}: {yaml_problem(exc)}") from None
    except ValueError as exc:
        raise WebhookConfigError(f"webhooks file {path}: {exc}") from None


def load_providers(path: Path) -> Mapping[UUID, ProviderEndpoint]:
    """Provider id → endpoint from a YAML (or ``.json``) file; every problem listed by path."""
    document = _read_document(path)
    try:
        parsed = _ProvidersFile.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(file)'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise WebhookConfigError(f"webhooks file {path} is invalid: {problems}") from None
    return parsed.providers
