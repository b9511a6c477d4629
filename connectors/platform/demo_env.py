"""``<state>/demo/demo.env``: the demo platform's addresses and keys as shell variables.

One file to ``set -a; . .state/demo/demo.env; set +a`` before trying the
documentation's examples: every example in README.md and docs/ reads its
URL, CA and key from these names, and the docs test runs them the same way
against a platform it started. Owner-only (0600), like the credentials file;
demo keys of a local platform only.

``SSL_CERT_FILE`` and ``CURL_CA_BUNDLE`` point Python (httpx, the SDKs) and
curl at the local CA, so the examples need no CA option. In that shell they
replace the system's trust store: it is a shell for the local platform.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from connectors.auth import Role
from connectors.platform.demo import DemoKey
from infra.tls import write_secret

__all__ = ["demo_environment", "write_demo_env"]

_ROLE_NAMES: Mapping[Role, str] = {
    Role.AGENCY: "AGENCY",
    Role.PROVIDER: "PROVIDER",
    Role.OPERATOR: "OPERATOR",
    Role.DIRECTORY_ADMIN: "DIRECTORY_ADMIN",
}


def demo_environment(
    keys: Sequence[DemoKey],
    *,
    intake_url: str,
    console_url: str,
    ca: Path | None,
    metrics: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables: URLs, the CA, and the first demo key of each role with its ids.

    ``metrics``: each process kind's probe server URL, as ``<KIND>_METRICS_URL``.
    """
    env = {"SAFEPASSAGE_INTAKE_URL": intake_url, "SAFEPASSAGE_CONSOLE_URL": console_url}
    for kind, url in (metrics or {}).items():
        env[f"{kind.upper().replace('-', '_')}_METRICS_URL"] = url
    if ca is not None:
        env |= {
            "SAFEPASSAGE_CA_FILE": str(ca),
            "SSL_CERT_FILE": str(ca),
            "CURL_CA_BUNDLE": str(ca),
            "SAFEPASSAGE_DIRECTORY_CAFILE": str(ca),
        }
    for key in keys:
        name = _ROLE_NAMES.get(key.role)
        if name is None or f"{name}_KEY" in env:
            continue  # the first of each role; the credentials file lists them all
        env[f"{name}_KEY"] = key.key
        if key.agency_id is not None:
            env[f"{name}_ID"] = key.agency_id
        if key.provider_id is not None:
            env[f"{name}_ID"] = str(key.provider_id)
        if key.role is Role.DIRECTORY_ADMIN:  # `safepassage providers` reads these
            env |= {
                "SAFEPASSAGE_DIRECTORY_URL": intake_url,
                "SAFEPASSAGE_DIRECTORY_API_KEY": key.key,
            }
    return env


def write_demo_env(path: Path, environment: Mapping[str, str]) -> Path:
    """Write ``NAME=value`` lines (values are URLs, paths and keys: nothing to quote)."""
    for name, value in environment.items():
        if any(c.isspace() or c in "'\"$`\\" for c in value):
            raise ValueError(f"{name}: a value that would need shell quoting")
    header = "# `safepassage run`: the local demo platform (set -a; . this file; set +a). 0600.\n"
    body = "".join(f"{name}={value}\n" for name, value in environment.items())
    write_secret(path, (header + body).encode())
    return path
