"""Kafka principals of the local platform: their SCRAM credentials and client files.

Each component and each party authenticates as a principal of its own
(SASL/SCRAM-SHA-512 over TLS), so the broker's ACLs can tell them apart.
The passwords are generated here, kept in one owner-only JSON file under
``.state/security/``, and given to the broker through Kafka's admin API
(``AlterUserScramCredentials``) over the nodes' mutual-TLS listener, so no
password ever appears on a command line or in ``server.properties``. For
each principal a client properties file (librdkafka / Java spelling) and an
environment file (``SAFEPASSAGE_*``, for our own services) are written,
owner-only too.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from infra.exceptions import InfraError
from infra.tls import write_secret

__all__ = [
    "NODE_PRINCIPAL_PREFIX",
    "SCRAM_ITERATIONS",
    "SCRAM_MECHANISM",
    "CredentialStore",
    "PrincipalError",
    "upsert_scram_users",
]

SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
NODE_PRINCIPAL_PREFIX = "kafka-node-"
"""The broker nodes' own principals (from their certificates); no SCRAM user may take one."""

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


class PrincipalError(InfraError):
    """A principal's name is unusable, or its credentials could not be stored or provisioned."""


def check_name(name: str) -> str:
    """``name`` if it can be a SCRAM principal: lower-case letters, digits and ``-``."""
    if not _NAME.fullmatch(name) or name.startswith(NODE_PRINCIPAL_PREFIX):
        raise PrincipalError(
            f"{name!r} cannot name a principal: use 1 to 63 lower-case letters, digits or '-', "
            f"starting with a letter and not with {NODE_PRINCIPAL_PREFIX!r}"
        )
    return name


@dataclass(frozen=True)
class CredentialStore:
    """The principals' passwords, in one owner-only file (``credentials.json``)."""

    directory: Path

    @property
    def path(self) -> Path:
        return self.directory / "credentials.json"

    def load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            principals = document["principals"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PrincipalError(f"{self.path} is not a credentials file: {exc}") from None
        if not isinstance(principals, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in principals.items()
        ):
            raise PrincipalError(f"{self.path}: 'principals' must map names to passwords")
        return dict(principals)

    def ensure(self, names: Iterable[str]) -> dict[str, str]:
        """Every principal of ``names`` with a password: existing ones kept, new ones generated."""
        known = self.load()
        missing = [check_name(name) for name in names if name not in known]
        if missing:
            known.update({name: secrets.token_urlsafe(32) for name in missing})
            payload = json.dumps({"principals": known}, indent=2, sort_keys=True) + "\n"
            write_secret(self.path, payload.encode())
        return known

    def password(self, name: str) -> str:
        try:
            return self.load()[name]
        except KeyError:
            raise PrincipalError(f"no credentials for principal {name!r} in {self.path}") from None

    def write_client_files(self, name: str, bootstrap: str, ca: Path) -> tuple[Path, Path]:
        """``clients/<name>.properties`` and ``clients/<name>.env`` for one principal.

        The properties file speaks librdkafka's and the Java client's
        language (``kafka-console-consumer --consumer.config``, any
        confluent-kafka client); the env file is what our own services read.
        """
        password = self.password(name)
        properties = "".join(
            f"{key}={value}\n"
            for key, value in {
                "bootstrap.servers": bootstrap,
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": SCRAM_MECHANISM,
                "sasl.username": name,
                "sasl.password": password,
                "ssl.ca.location": ca.resolve(),
            }.items()
        )
        environment = "".join(
            f"{key}={value}\n"
            for key, value in {
                "SAFEPASSAGE_BOOTSTRAP_SERVERS": bootstrap,
                "SAFEPASSAGE_SECURITY_PROTOCOL": "SASL_SSL",
                "SAFEPASSAGE_SASL_MECHANISM": SCRAM_MECHANISM,
                "SAFEPASSAGE_SASL_USERNAME": name,
                "SAFEPASSAGE_SASL_PASSWORD": password,
                "SAFEPASSAGE_SSL_CAFILE": ca.resolve(),
            }.items()
        )
        properties_path = self.directory / "clients" / f"{name}.properties"
        env_path = self.directory / "clients" / f"{name}.env"
        write_secret(properties_path, properties.encode())
        write_secret(env_path, environment.encode())
        return properties_path, env_path


def upsert_scram_users(
    admin: AdminClient, credentials: Mapping[str, str], timeout_s: float = 30.0
) -> None:
    """Give the broker each principal's SCRAM-SHA-512 credential (idempotent: an upsert).

    ``admin`` must authenticate as a super user (the launcher uses a node's
    certificate). Failures name the principal, never the password.
    """
    if not credentials:
        return
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(name, info, password.encode())
        for name, password in sorted(credentials.items())
    ]
    futures = admin.alter_user_scram_credentials(upserts, request_timeout=timeout_s)
    failed = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except Exception as exc:  # KafkaException or a timeout: report by name only
            failed.append(f"{name} ({type(exc).__name__}: {exc})")
    if failed:
        raise PrincipalError("could not set the SCRAM credentials of " + ", ".join(failed))
    _await_known(admin, sorted(credentials), timeout_s)


def _await_known(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    """Return once the broker describes every credential: a client may then log in at once.

    The controller commits a credential before it answers; the broker that
    authenticates clients applies it a moment later.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        missing = []
        futures = admin.describe_user_scram_credentials(names)
        assert isinstance(futures, dict)  # noqa: S101 - one future per user when users are named
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s)
            except Exception:  # RESOURCE_NOT_FOUND until the broker has it
                missing.append(name)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise PrincipalError(
                "the broker did not show the SCRAM credentials of " + ", ".join(missing)
            )
        time.sleep(0.2)
