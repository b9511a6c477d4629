"""A real intake API in the test process, to read survivor status the way operators do.

Router workers serve no HTTP: status is published to the compacted
``case-status.v1`` and read through the intake, which keeps a copy of that
topic (:class:`connectors.intake.status.StatusStore`). :func:`running_intake`
serves the real app with uvicorn in a thread, with an operator's key, so a
test reads ``GET /v1/survivors/{id}/status`` exactly as an operator would.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from connectors.auth import Role, add_key
from connectors.intake import IntakeSettings, create_app
from streams.settings import KafkaSettings
from streams.topics import Topics
from tests.integration.conftest import free_port
from tests.integration.waits import read_to_end, wait_until

__all__ = ["Server", "StatusClient", "latest_statuses", "running_intake"]


class Server:
    """uvicorn serving an app in a thread of the test process, on a free port."""

    def __init__(self, app: Any, port: int, certfile: str | None = None) -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
            ssl_certfile=certfile,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="intake-uvicorn", daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass(frozen=True)
class StatusClient:
    """Reads status from a running intake as an operator (or with another key)."""

    url: str
    operator_key: str
    keys_file: Path

    def get(self, survivor: object, key: str | None = "") -> httpx.Response:
        """``GET /v1/survivors/{survivor}/status``; ``key`` None sends no key, "" the operator's."""
        token = self.operator_key if key == "" else key
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(f"{self.url}/v1/survivors/{survivor}/status", headers=auth, timeout=30)

    def status(self, survivor: uuid.UUID) -> tuple[int, Any]:
        """(HTTP status, JSON body of a 200 or None); 0 when the intake cannot be reached."""
        try:
            answer = self.get(survivor)
        except httpx.HTTPError:
            return 0, None
        return answer.status_code, answer.json() if answer.status_code == 200 else None

    def wait_ready(self) -> None:
        """Until the intake's status store has caught up (no more 503 Retry-After)."""
        wait_until(
            lambda: self.get(uuid.uuid4()).status_code == 404,
            "the intake's status store to catch up with case-status.v1",
        )


@contextmanager
def running_intake(settings: KafkaSettings, folder: Path) -> Iterator[StatusClient]:
    """The intake API on ``settings``' namespace with an operator key, caught up when yielded.

    The topics it reads and writes (``case-status.v1``, ``audit.v1``) must exist.
    """
    folder.mkdir(parents=True, exist_ok=True)
    keys_file = folder / "api-keys.yaml"
    operator_key, _ = add_key(keys_file, role=Role.OPERATOR, principal="test-operator")
    app = create_app(
        IntakeSettings(api_keys_file=keys_file, state_dir=folder / "state"), kafka=settings
    )
    port = free_port()
    with Server(app, port):
        client = StatusClient(f"http://127.0.0.1:{port}", operator_key, keys_file)
        client.wait_ready()
        yield client


def latest_statuses(settings: KafkaSettings) -> dict[str, Any]:
    """Every survivor's latest status record on ``case-status.v1`` now (a tombstone removes)."""
    latest: dict[str, Any] = {}
    for message in read_to_end(settings, Topics.of(settings).case_status):
        key, value = message.key(), message.value()
        assert key is not None
        if value is None:
            latest.pop(key.decode(), None)
        else:
            latest[key.decode()] = json.loads(value)
    return latest
