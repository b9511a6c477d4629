"""The demo principals of ``safepassage run``: API keys made once, kept in one owner-only file.

A tester of a fresh checkout should not have to run ``safepassage keys add``
four times before the intake answers. ``safepassage run`` therefore gives
every entry of :data:`DEMO_PRINCIPALS` an API key (its hash in the keys
file, as every key) and keeps the keys themselves in
``<state>/demo/credentials.yaml``, mode 0600, which the summary names. They
are demo keys of a local platform: shown in the summary, kept across runs
(the same key works tomorrow), made anew only when the file is lost or its
key no longer opens the keys file.

Every provider of the demo directory (``infra/demo/directory.hsds.json``,
which every run imports) is a demo principal too
(:data:`DIRECTORY_PRINCIPALS`, ``demo-provider-<slug>``), with the
directory's provider id, so that it can answer its offers with its own key:
the provider simulator of ``safepassage run --demo`` does.

The demo providers also get a webhooks file (``<state>/demo/webhooks.yaml``,
0600): one endpoint each under ``demo_webhook_url`` with a fresh signing
secret, so the webhook delivery has providers to deliver to. Without
``--demo`` nothing listens there: point the URL at a receiver (or edit the
file); with it, the provider simulator does.

Adding a demo principal is one line in :data:`DEMO_PRINCIPALS`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from connectors.auth import Role, add_key, hash_key, load_keys
from connectors.directory.demo import PROVIDERS
from connectors.webhooks import new_secret
from infra.tls import write_secret

__all__ = [
    "ALL_DEMO_PRINCIPALS",
    "DEMO_PRINCIPALS",
    "DIRECTORY_PRINCIPALS",
    "DemoKey",
    "DemoPrincipal",
    "ensure_demo_keys",
    "ensure_demo_webhooks",
]


@dataclass(frozen=True)
class DemoPrincipal:
    """One caller of the intake API that the demo platform gets a key for."""

    name: str
    role: Role
    agency_id: str | None = None
    """Agencies: the ``agency_id`` their events carry."""
    provider_id: uuid.UUID | None = None
    """Providers of the demo directory: their id there (others get a random one, once)."""


DEMO_PRINCIPALS: tuple[DemoPrincipal, ...] = (
    DemoPrincipal("demo-agency", Role.AGENCY, agency_id="agency:demo"),
    DemoPrincipal("demo-agency-be", Role.AGENCY, agency_id="agency:demo-be"),
    DemoPrincipal("demo-agency-de", Role.AGENCY, agency_id="agency:demo-de"),
    DemoPrincipal("demo-agency-ro", Role.AGENCY, agency_id="agency:demo-ro"),
    DemoPrincipal("demo-agency-md", Role.AGENCY, agency_id="agency:demo-md"),
    DemoPrincipal("demo-housing-provider", Role.PROVIDER),
    DemoPrincipal("demo-health-provider", Role.PROVIDER),
    DemoPrincipal("demo-operator", Role.OPERATOR),
    DemoPrincipal("demo-directory-admin", Role.DIRECTORY_ADMIN),
)
"""Who gets a demo key; providers get a provider id of their own (made once, then kept).

The agencies identify the demo scenario's survivors, one per country of the
demo directory (``demo-agency`` the Dutch one)."""

DIRECTORY_PRINCIPALS: tuple[DemoPrincipal, ...] = tuple(
    DemoPrincipal(f"demo-provider-{p.slug}", Role.PROVIDER, provider_id=p.provider_id)
    for p in PROVIDERS
)
"""One provider key per provider of the demo directory, under the directory's provider id."""

ALL_DEMO_PRINCIPALS = DEMO_PRINCIPALS + DIRECTORY_PRINCIPALS
"""Everyone ``safepassage run`` keeps a demo key for."""


class DemoKey(BaseModel):
    """A demo principal's key as kept in the credentials file (and shown in the summary)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    principal: str
    role: Role
    key: str
    agency_id: str | None = None
    provider_id: uuid.UUID | None = None


class _CredentialsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[DemoKey]


def _read(path: Path) -> dict[str, DemoKey]:
    """The kept keys by principal; a missing or unreadable file is no keys (they are remade)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        return {key.principal: key for key in _CredentialsFile.model_validate(document).keys}
    except (OSError, yaml.YAMLError, ValueError):
        return {}


def ensure_demo_keys(
    keys_file: Path,
    credentials_file: Path,
    principals: Sequence[DemoPrincipal] = ALL_DEMO_PRINCIPALS,
) -> list[DemoKey]:
    """Every demo principal's key: the kept one if the keys file still knows it, else a new one.

    A kept provider key whose provider id is not the one the principal must
    have (the demo directory's) is made anew.
    """
    kept = _read(credentials_file)
    known = {entry.key_hash for entry in load_keys(keys_file)} if keys_file.exists() else set()
    keys: list[DemoKey] = []
    for principal in principals:
        old = kept.get(principal.name)
        if (
            old is not None
            and old.role is principal.role
            and hash_key(old.key) in known
            and principal.provider_id in {None, old.provider_id}
        ):
            keys.append(old)
            continue
        provider_id = (
            principal.provider_id
            or (old.provider_id if old else None)
            or (uuid.uuid4() if principal.role is Role.PROVIDER else None)
        )
        key, _ = add_key(
            keys_file,
            role=principal.role,
            principal=principal.name,
            provider_id=provider_id,
            agency_id=principal.agency_id,
        )
        keys.append(
            DemoKey(
                principal=principal.name,
                role=principal.role,
                key=key,
                agency_id=principal.agency_id,
                provider_id=provider_id,
            )
        )
    document = {"keys": [key.model_dump(mode="json", exclude_none=True) for key in keys]}
    header = "# Demo API keys of `safepassage run` (local platform only). Owner-only.\n"
    write_secret(credentials_file, (header + yaml.safe_dump(document, sort_keys=False)).encode())
    return keys


def ensure_demo_webhooks(path: Path, keys: Sequence[DemoKey], base_url: str) -> Path:
    """A webhooks file with an endpoint for each demo provider; existing entries are kept.

    A provider already in the file keeps its URL (perhaps edited) and secrets.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    except (OSError, yaml.YAMLError):
        return path  # not ours to repair: the delivery reports what is wrong with it
    existing = document.get("providers") if isinstance(document, dict) else None
    providers: dict[str, object] = dict(existing) if isinstance(existing, dict) else {}
    missing = [
        str(key.provider_id)
        for key in keys
        if key.provider_id is not None and str(key.provider_id) not in providers
    ]
    if not missing and path.exists():
        return path
    for provider_id in missing:
        providers[provider_id] = {
            "url": f"{base_url.rstrip('/')}/{provider_id}",
            "secrets": [new_secret()],
        }
    header = "# Webhook endpoints of the demo providers (`safepassage run`). Owner-only.\n"
    text = header + yaml.safe_dump({"providers": providers}, sort_keys=False)
    write_secret(path, text.encode())
    return path
