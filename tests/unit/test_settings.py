"""Settings: environment prefix, frozen objects, secrets kept secret."""

from __future__ import annotations

import pydantic
import pytest

from infra import BrokerSettings
from processors.settings import RouterSettings
from streams.settings import KafkaSettings, Profile


def test_environment_variables_use_the_safepassage_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEPASSAGE_BOOTSTRAP_SERVERS", "10.0.0.1:9092,10.0.0.2:9092")
    monkeypatch.setenv("SAFEPASSAGE_PROFILE", "production")
    monkeypatch.setenv("SAFEPASSAGE_BROKER_PORT", "29092")

    settings = KafkaSettings()

    assert settings.bootstrap_servers == "10.0.0.1:9092,10.0.0.2:9092"
    assert settings.profile is Profile.PRODUCTION
    assert BrokerSettings().port == 29092
    assert BrokerSettings().resolved_controller_port == 29093


def test_settings_are_frozen() -> None:
    settings = KafkaSettings()
    with pytest.raises(pydantic.ValidationError):
        settings.bootstrap_servers = "elsewhere:9092"  # type: ignore[misc]


def test_password_is_a_secret_that_reaches_only_the_client_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAFEPASSAGE_SASL_PASSWORD", "hunter2-very-secret")
    monkeypatch.setenv("SAFEPASSAGE_SASL_USERNAME", "agency-7")
    monkeypatch.setenv("SAFEPASSAGE_SASL_MECHANISM", "SCRAM-SHA-512")

    settings = KafkaSettings()

    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())
    assert settings.client_config()["sasl.password"] == "hunter2-very-secret"
    assert settings.client_config()["sasl.mechanism"] == "SCRAM-SHA-512"


def test_invalid_values_are_refused_with_the_field_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEPASSAGE_PARTITIONS", "0")
    with pytest.raises(pydantic.ValidationError, match="partitions"):
        KafkaSettings()
    monkeypatch.delenv("SAFEPASSAGE_PARTITIONS")
    monkeypatch.setenv("SAFEPASSAGE_TOPIC_NAMESPACE", "has spaces")
    with pytest.raises(pydantic.ValidationError, match="topic_namespace"):
        KafkaSettings()


def test_router_cross_border_pairs_come_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEPASSAGE_ROUTER_CROSS_BORDER_PAIRS", '[["NL","BE"],["BE","DE"]]')
    policy = RouterSettings().to_policy()
    assert policy.allows_cross_border("NL", "BE")
    assert not policy.allows_cross_border("BE", "NL")
    monkeypatch.setenv("SAFEPASSAGE_ROUTER_CROSS_BORDER_PAIRS", '[["NL"]]')
    with pytest.raises(pydantic.ValidationError, match="cross_border_pairs"):
        RouterSettings()
