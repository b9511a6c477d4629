"""Fixtures for tests against a real Apache Kafka broker.

The session broker is a single KRaft node on ``SAFEPASSAGE_TEST_KAFKA_PORT``
(default 29092), kept in ``.state/test-kafka``. If one is already running
there it is reused and left running; otherwise the suite starts one from a
clean folder and stops it at the end (unless
``SAFEPASSAGE_TEST_KEEP_BROKER=1``). Tests that kill or stop brokers start
their own on free ports (see :func:`dedicated_settings`).
"""

from __future__ import annotations

import random
import shutil
import socket
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from infra import BrokerSettings

REPO = Path(__file__).resolve().parents[2]

SESSION_PORT = 29092
"""The session broker's default port (its controller listens on the next one): below the
kernel's ephemeral range, like every port the tests choose (see :func:`free_port`)."""


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out as a client's local port."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


PORT_FLOOR = 20000


def free_port(span: int = 1) -> int:
    """A loopback port, below the kernel's ephemeral range, free with the ``span - 1`` after it.

    A port the OS picks (``bind(0)``) lies in the ephemeral range, where a
    client that keeps reconnecting to a stopped broker can, on Linux, be
    given that very port as its own and connect to itself (TCP
    simultaneous open): the restarted broker then fails with "Address
    already in use". Seen once in CI on the 3-node cluster test.
    """
    ceiling = _ephemeral_low() - span
    for _ in range(200):
        base = random.randrange(PORT_FLOOR, ceiling)
        if all(_bindable(base + i) for i in range(span)):
            return base
    raise RuntimeError(f"no {span} free port(s) between {PORT_FLOOR} and {ceiling}")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def dedicated_settings(state_dir: Path, **overrides: object) -> BrokerSettings:
    """Settings for a broker of a test's own (free ports, its own state folder).

    The class-path cache is shared with the session broker so that no test
    pays for a Maven run. Plaintext unless ``security`` says otherwise: the
    fast tier tests behaviour, the secured tests (test_security.py) ask for
    ``security="sasl_ssl"``.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    shared_cache = REPO / ".state" / "test-kafka"
    for cached in shared_cache.glob("classpath-*.txt"):
        shutil.copy(cached, state_dir / cached.name)
    values: dict[str, object] = {
        "state_dir": state_dir,
        "port": free_port(),
        "controller_port": free_port(),
        "internal_port": free_port(),
        "heap": "384m",
        "security": "plaintext",
    }
    values.update(overrides)
    return BrokerSettings.model_validate(values)


def create_topic(
    bootstrap: str, name: str, partitions: int = 6, replication: int = 1, **config: str
) -> str:
    """Create one topic and wait for it (the admin client must outlive the future)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, num_partitions=partitions, replication_factor=replication, config=config)
    admin.create_topics([topic])[name].result(timeout=30)
    return name


UNREACHABLE_MIRROR = """<settings>
  <mirrors>
    <mirror>
      <id>nowhere</id>
      <mirrorOf>*</mirrorOf>
      <url>http://127.0.0.1:9/maven2</url>
    </mirror>
  </mirrors>
</settings>
"""


@pytest.fixture
def unreachable_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Maven with an empty local repository and every download sent to a closed port."""
    home = tmp_path / "maven-home"
    (home / ".m2").mkdir(parents=True)
    (home / ".m2" / "settings.xml").write_text(UNREACHABLE_MIRROR)
    monkeypatch.setenv(
        "MAVEN_OPTS", f"-Duser.home={home} -Dmaven.repo.local={tmp_path / 'empty-repo'}"
    )
