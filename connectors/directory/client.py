"""The directory API from Python: what ``safepassage providers`` and other modules call.

:class:`DirectoryClient` speaks HTTP(S) to the intake's ``/v1/providers``
with a directory administrator's key (or a provider's, for its own capacity).
:func:`load_directory` imports an HSDS 3.0 file through the API, e.g. the
demo directory (:data:`connectors.directory.demo.DEMO_FILE`). Every refusal
is one :class:`~connectors.exceptions.DirectoryClientError` whose message is
the problem document on one line (status, title, detail, the fields).
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.exceptions import DirectoryClientError
from infra.settings import BrokerSettings

__all__ = ["DirectoryClient", "DirectoryClientSettings", "load_directory", "read_document"]


class DirectoryClientSettings(BaseSettings):
    """Where the intake is and which key to use (environment ``SAFEPASSAGE_DIRECTORY_*``).

    The key is read from the environment (or a file), never from a command
    line, where other users of the machine could see it.
    """

    model_config = SettingsConfigDict(env_prefix="SAFEPASSAGE_DIRECTORY_", frozen=True)

    url: str = Field(
        default="https://127.0.0.1:8080", description="SAFEPASSAGE_DIRECTORY_URL: the intake."
    )
    api_key: SecretStr | None = Field(
        default=None, description="SAFEPASSAGE_DIRECTORY_API_KEY: a directory-admin key."
    )
    cafile: Path | None = Field(
        default=None,
        description=(
            "SAFEPASSAGE_DIRECTORY_CAFILE: the CA the intake's certificate is from; "
            "unset: the local CA of `make run` if there is one, else the system's."
        ),
    )
    timeout_s: float = Field(default=60.0, gt=0, description="SAFEPASSAGE_DIRECTORY_TIMEOUT_S.")

    def verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies the intake's certificate against."""
        cafile = self.cafile
        if cafile is None:
            local = BrokerSettings().security_dir / "ca.pem"
            cafile = local if local.exists() else None
        if cafile is None:
            return True  # the system's trust store
        try:
            return ssl.create_default_context(cafile=str(cafile))
        except (OSError, ssl.SSLError) as exc:
            raise DirectoryClientError(
                f"cannot load the CA file {cafile} ({type(exc).__name__})"
            ) from None


def _one_line(response: httpx.Response) -> str:
    """The problem document of an error answer, on one line."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        return f"{response.status_code} {response.reason_phrase}"
    text = f"{response.status_code} {problem.get('title', response.reason_phrase)}"
    if problem.get("detail"):
        text += f": {problem['detail']}"
    errors = problem.get("errors")
    if isinstance(errors, list) and errors:
        shown = "; ".join(
            f"{e.get('location') or '/'} {e.get('message')}"
            for e in errors[:10]
            if isinstance(e, dict)
        )
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        text += f" [{shown}{more}]"
    return " ".join(text.split())


@dataclass
class DirectoryClient:
    """The intake's directory API; ``transport`` replaces the network in tests."""

    url: str
    api_key: str
    verify: ssl.SSLContext | bool = True
    """``True``: the system's trust store; a context from ``ssl.create_default_context``."""
    timeout_s: float = 60.0
    transport: httpx.BaseTransport | None = None

    @classmethod
    def from_settings(cls, settings: DirectoryClientSettings, api_key: str | None = None) -> Self:
        """From the environment; ``api_key`` (e.g. read from a file) wins over it."""
        key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
        if not key:
            raise DirectoryClientError(
                "no API key: set SAFEPASSAGE_DIRECTORY_API_KEY (or --api-key-file) to a key "
                "from `safepassage keys add --role directory-admin --principal NAME`"
            )
        return cls(settings.url, key, settings.verify(), settings.timeout_s)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            with httpx.Client(
                base_url=self.url.rstrip("/"),
                verify=self.verify,
                timeout=self.timeout_s,
                transport=self.transport,
            ) as http:
                response = http.request(
                    method,
                    path,
                    headers={"Authorization": f"Bearer {self.api_key}"},
                    json=body,
                )
        except httpx.HTTPError as exc:
            raise DirectoryClientError(
                f"cannot reach the intake at {self.url} ({type(exc).__name__})"
            ) from None
        if response.status_code >= 400:
            raise DirectoryClientError(_one_line(response), response.status_code)
        return response.json()

    def list(self) -> list[dict[str, Any]]:
        """Every provider (``GET /v1/providers``)."""
        answer: list[dict[str, Any]] = self._call("GET", "/v1/providers")
        return answer

    def get(self, provider_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._call("GET", f"/v1/providers/{provider_id}")
        return answer

    def register(self, entry: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/providers``; the answer names the provider id."""
        answer: dict[str, Any] = self._call("POST", "/v1/providers", entry)
        return answer

    def update(self, provider_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        """``PUT /v1/providers/{id}``: the whole entry."""
        answer: dict[str, Any] = self._call("PUT", f"/v1/providers/{provider_id}", entry)
        return answer

    def capacity(
        self, provider_id: str, category: str, total: int, available: int
    ) -> dict[str, Any]:
        """``PUT /v1/providers/{id}/capacity``."""
        figure = {"category": category, "total": total, "available": available}
        answer: dict[str, Any] = self._call("PUT", f"/v1/providers/{provider_id}/capacity", figure)
        return answer

    def import_hsds(self, document: Any) -> dict[str, Any]:
        """``POST /v1/providers/import``: registered and updated ids, capacity reports."""
        answer: dict[str, Any] = self._call("POST", "/v1/providers/import", document)
        return answer

    def export_hsds(self) -> dict[str, Any]:
        """``GET /v1/providers/export``: an HSDS 3.0 page."""
        answer: dict[str, Any] = self._call("GET", "/v1/providers/export")
        return answer


def read_document(path: Path) -> Any:
    """An HSDS JSON file; :class:`DirectoryClientError` when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DirectoryClientError(f"cannot read {path} ({type(exc).__name__})") from None
    except ValueError as exc:
        raise DirectoryClientError(f"{path} is not JSON ({exc})") from None


def load_directory(client: DirectoryClient, path: Path | None = None) -> dict[str, Any]:
    """Import an HSDS 3.0 file through the API (default: the demo directory); the report.

    All or nothing on the intake's side; importing the same file again
    updates every provider to the same entry (idempotent).
    """
    if path is None:
        from connectors.directory.demo import DEMO_FILE  # noqa: PLC0415 - only when defaulted

        path = DEMO_FILE
    return client.import_hsds(read_document(path))
