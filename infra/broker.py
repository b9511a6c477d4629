"""Run real Apache Kafka brokers in KRaft mode on loopback.

Two deployments share one implementation:

* ``single``: one combined broker + controller node (``settings.port``),
  what ``safepassage run`` and the test suite use;
* ``cluster``: three combined nodes on consecutive loopback ports, each
  stoppable and restartable on its own, for replication and failover tests.

Every node lives in its own folder under the state directory: its
``server.properties``, data, logs, the JVM's output and its PID file. The
JVM's command line names that ``server.properties``, which is how
:mod:`infra.process` recognises it before signalling a PID.
"""

from __future__ import annotations

import base64
import logging
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from infra.broker_security import (
    ADMIN_PRINCIPAL,
    NodeSecurity,
    client_hosts,
    node_principal,
    secured_properties,
)
from infra.exceptions import BrokerStartError, BrokerStopError
from infra.maven import require_tool, resolve_classpath
from infra.principals import CredentialStore, upsert_scram_users
from infra.process import describe, port_in_use, read_pid, send_signal, spawn, tail, wait_gone
from infra.settings import BrokerSettings
from infra.tls import TlsFiles, ensure_node_tls

__all__ = [
    "BrokerNode",
    "Deployment",
    "NodeStatus",
    "StartResult",
    "cluster",
    "new_cluster_id",
    "single_node",
]

CLUSTER_SIZE = 3

COMPONENT_PRINCIPALS = (ADMIN_PRINCIPAL, "router", "intake", "delivery", "operator", "console")
"""Principals a secured deployment always has; parties' principals are added by name."""

_quiet = logging.getLogger("infra.broker.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding.

    Kafka's own ``Uuid.randomUuid()`` draws again when the text starts with
    "-" (about 1 draw in 64), because command-line tools would read such an
    id as an option; this does the same.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True)
class BrokerNode:
    """One combined KRaft node: its identity, ports and files."""

    node_id: int
    host: str
    port: int
    controller_port: int
    directory: Path
    voters: str
    replication: int
    heap: str
    security: NodeSecurity | None = None
    """None: the plaintext layout of the fast test tier (no authentication, no authorizer)."""

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        """The node's server.properties (also how its process is recognised)."""
        return self.directory / "server.properties"

    @property
    def data_dir(self) -> Path:
        """Log segments and KRaft metadata."""
        return self.directory / "data"

    @property
    def log_dir(self) -> Path:
        return self.directory / "logs"

    @property
    def pid_file(self) -> Path:
        return self.directory / "broker.pid"

    @property
    def stdout_path(self) -> Path:
        """What the JVM prints before logging is set up (and on crashes)."""
        return self.directory / "stdout.log"

    @property
    def server_log(self) -> Path:
        return self.log_dir / "server.log"

    def render_properties(self) -> str:
        """server.properties for this node; dev-friendly but durable."""
        min_isr = min(2, self.replication)
        lines = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "listeners": (
                f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "default.replication.factor": str(self.replication),
            "offsets.topic.replication.factor": str(self.replication),
            "offsets.topic.num.partitions": "12",
            "transaction.state.log.replication.factor": str(self.replication),
            "transaction.state.log.min.isr": str(min_isr),
            "share.coordinator.state.topic.replication.factor": str(self.replication),
            "share.coordinator.state.topic.min.isr": str(min_isr),
            # Topics come from the catalog (safepassage topics provision), never by accident.
            "auto.create.topics.enable": "false",
            "unclean.leader.election.enable": "false",
            # Faster consumer-group joins: tests and the dev stack start many groups.
            "group.initial.rebalance.delay.ms": "0",
        }
        if self.security is not None:
            lines.update(
                secured_properties(self.host, self.port, self.controller_port, self.security)
            )
        header = f"# Written by safepassage (infra.broker) for node {self.node_id}; do not edit.\n"
        return header + "".join(f"{key}={value}\n" for key, value in lines.items())

    def render_log4j(self) -> str:
        """log4j2 configuration: one rolling file in the node's log folder."""
        return (
            "status = warn\n"
            "appender.file.type = RollingFile\n"
            "appender.file.name = FILE\n"
            f"appender.file.fileName = {self.server_log}\n"
            f"appender.file.filePattern = {self.log_dir}/server.log.%i\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "appender.file.policies.type = Policies\n"
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy\n"
            "appender.file.policies.size.size = 50MB\n"
            "appender.file.strategy.type = DefaultRolloverStrategy\n"
            "appender.file.strategy.max = 5\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = FILE\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
            "logger.apache.name = org.apache.kafka\nlogger.apache.level = INFO\n"
        )

    def is_formatted(self) -> bool:
        """True once the storage folder carries a cluster id (formatted)."""
        return (self.data_dir / "meta.properties").exists()

    def pid(self) -> int | None:
        """PID of this node's running JVM, or None; clears a stale PID file."""
        return read_pid(self.pid_file, str(self.config_path))

    def is_running(self) -> bool:
        """Whether this node's JVM is alive (it may still be starting)."""
        return self.pid() is not None

    @property
    def ports(self) -> tuple[int, ...]:
        internal = () if self.security is None else (self.security.internal_port,)
        return (self.port, self.controller_port, *internal)

    def admin(self) -> AdminClient:
        """An admin client of the launcher: over the mutual-TLS listener when secured."""
        config = (
            {"bootstrap.servers": self.bootstrap}
            if self.security is None
            else self.security.admin_config(self.host)
        )
        return AdminClient({**config, "socket.timeout.ms": 2000}, logger=_quiet)

    def answers(self, timeout_s: float = 2.0) -> bool:
        """Whether the node answers a metadata request and lists itself as a broker."""
        try:
            metadata = self.admin().list_topics(timeout=timeout_s)
        except Exception:  # any failure just means "not (yet) answering"
            return False
        return self.node_id in metadata.brokers

    def kafka_version(self) -> str | None:
        """The version the running broker logged at start ("Kafka version: X")."""
        if not self.server_log.exists():
            return None
        version = None
        with self.server_log.open(encoding="utf-8", errors="replace") as log:
            for line in log:
                if "Kafka version: " in line:
                    version = line.split("Kafka version: ", 1)[1].split()[0]
        return version

    def tail(self, lines: int = 15) -> str:
        """The last lines of the node's logs, to explain a failed start."""
        return tail((self.stdout_path, self.server_log), lines)


@dataclass(frozen=True)
class NodeStatus:
    """What ``status`` reports for one node."""

    node_id: int
    bootstrap: str
    pid: int | None
    answering: bool


@dataclass(frozen=True)
class StartResult:
    """Outcome of starting one node."""

    node_id: int
    bootstrap: str
    pid: int
    already_running: bool


class Deployment:
    """A set of KRaft nodes sharing one cluster id and one state folder."""

    def __init__(
        self, name: str, settings: BrokerSettings, nodes: Sequence[BrokerNode], directory: Path
    ) -> None:
        self.name = name
        self.settings = settings
        self.nodes = tuple(nodes)
        self.directory = directory

    @property
    def bootstrap(self) -> str:
        """bootstrap.servers for clients of this deployment."""
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> BrokerNode:
        """The node with this id, or a clear error."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        known = ", ".join(str(n.node_id) for n in self.nodes)
        raise BrokerStartError(
            f"The {self.name} deployment has no node {node_id} (nodes: {known})."
        )

    def _select(self, node_ids: Iterable[int] | None) -> list[BrokerNode]:
        return list(self.nodes) if node_ids is None else [self.node(i) for i in node_ids]

    def cluster_id(self) -> str:
        """The KRaft cluster id, created once and kept beside the nodes."""
        path = self.directory / "cluster.id"
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        self.directory.mkdir(parents=True, exist_ok=True)
        cluster_id = new_cluster_id()
        path.write_text(cluster_id + "\n", encoding="utf-8")
        return cluster_id

    def status(self) -> list[NodeStatus]:
        """PID and metadata answer for every node."""
        out = []
        for node in self.nodes:
            pid = node.pid()
            out.append(
                NodeStatus(node.node_id, node.bootstrap, pid, pid is not None and node.answers())
            )
        return out

    def start(self, node_ids: Iterable[int] | None = None) -> list[StartResult]:
        """Start the selected nodes (all by default) and wait until each answers.

        Idempotent: a node already running is reported as such and left alone.
        Nodes are all launched before waiting, since a KRaft quorum needs a
        majority of controllers before any of them answers.
        """
        selected = self._select(node_ids)
        java = require_tool("java", self.settings.java)  # its defaults speak for the broker
        classpath = resolve_classpath(self.settings.state_dir, self.settings.mvn)
        results: dict[int, StartResult] = {}
        launched: list[tuple[BrokerNode, subprocess.Popen[bytes]]] = []
        for node in selected:
            pid = node.pid()
            if pid is not None:
                self._check_same_security(node)
                results[node.node_id] = StartResult(node.node_id, node.bootstrap, pid, True)
                continue
            self._prepare(node, java, classpath)
            command = [java, *self._jvm_options(node), "kafka.Kafka", str(node.config_path)]
            process = spawn(command, node.stdout_path, node.pid_file, node.directory)
            launched.append((node, process))
        deadline = time.monotonic() + self.settings.start_timeout_s
        for node, process in launched:
            self._wait_ready(node, process, deadline)
            results[node.node_id] = StartResult(node.node_id, node.bootstrap, process.pid, False)
        for node in selected:
            if node.node_id in results and results[node.node_id].already_running:
                self._wait_ready(node, None, deadline)
        if self.settings.secured:
            self.ensure_principals(())
        return [results[node.node_id] for node in selected]

    @property
    def credentials(self) -> CredentialStore:
        return CredentialStore(self.settings.security_dir)

    def ensure_principals(self, names: Iterable[str]) -> dict[str, str]:
        """Give the running, secured cluster these principals (and the components').

        Idempotent: passwords are generated once and kept; every principal's
        SCRAM credential is (re)set on the cluster and its client files are
        (re)written, so a cluster formatted anew gets them back. Returns the
        principals' passwords.
        """
        if not self.settings.secured:
            raise BrokerStartError("principals exist only on a secured (sasl_ssl) broker")
        wanted = dict.fromkeys([*COMPONENT_PRINCIPALS, *names])
        credentials = {n: p for n, p in self.credentials.ensure(wanted).items() if n in wanted}
        running = [node for node in self.nodes if node.pid() is not None]
        if not running:
            raise BrokerStartError(f"the {self.name} deployment is not running")
        upsert_scram_users(running[0].admin(), credentials)
        ca = self.settings.security_dir / "ca.pem"
        for name in credentials:
            self.credentials.write_client_files(name, self.bootstrap, ca)
        return credentials

    def stop(self, node_ids: Iterable[int] | None = None) -> list[int]:
        """Stop the selected nodes cleanly (SIGTERM, then SIGKILL after the timeout).

        All selected nodes get SIGTERM at once: a KRaft node shutting down
        needs the quorum, so stopping them one after another could leave the
        last one waiting for controllers that are already gone.
        Returns the ids of the nodes that were running.
        """
        running = [
            (node, pid) for node in self._select(node_ids) if (pid := node.pid()) is not None
        ]
        for _, pid in running:
            send_signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.stop_timeout_s
        for node, pid in running:
            if not wait_gone(pid, max(0.1, deadline - time.monotonic())):
                send_signal(pid, signal.SIGKILL)
                if not wait_gone(pid, 10.0):
                    raise BrokerStopError(
                        f"Kafka node {node.node_id} (PID {pid}) did not exit even after SIGKILL "
                        f"({describe(pid)})."
                    )
            node.pid_file.unlink(missing_ok=True)
        return [node.node_id for node, _ in running]

    def kill(self, node_id: int) -> int | None:
        """SIGKILL one node, as a crash would (for durability and failover tests)."""
        node = self.node(node_id)
        pid = node.pid()
        if pid is None:
            return None
        send_signal(pid, signal.SIGKILL)
        wait_gone(pid, 10.0)
        return pid

    def _check_same_security(self, node: BrokerNode) -> None:
        """A running node started with the other security setting is an error, not a reuse."""
        running = node.config_path.read_text(encoding="utf-8") if node.config_path.exists() else ""
        secured = "authorizer.class.name=" in running
        if secured != self.settings.secured:
            was, now = ("sasl_ssl", "plaintext") if secured else ("plaintext", "sasl_ssl")
            raise BrokerStartError(
                f"Kafka node {node.node_id} runs with security={was}, but the settings ask for "
                f"{now} (SAFEPASSAGE_BROKER_SECURITY): stop it first (safepassage kafka stop)."
            )

    def _prepare(self, node: BrokerNode, java: str, classpath: str) -> None:
        for folder in (node.directory, node.data_dir, node.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if node.security is not None:
            ensure_node_tls(
                self.settings.security_dir,
                node.directory,
                node_principal(node.node_id),
                client_hosts([node.host]),
            )
        node.config_path.write_text(node.render_properties(), encoding="utf-8")
        (node.directory / "log4j2.properties").write_text(node.render_log4j(), encoding="utf-8")
        # A Java argument file keeps the long class path out of `ps` and argv limits.
        quoted = classpath.replace("\\", "\\\\").replace('"', '\\"')
        (node.directory / "jvm.args").write_text(f'-cp "{quoted}"\n', encoding="utf-8")
        busy = [p for p in node.ports if port_in_use(node.host, p)]
        if busy:
            raise BrokerStartError(
                f"Cannot start Kafka node {node.node_id}: port(s) {', '.join(map(str, busy))} on "
                f"{node.host} are taken by a process that is not this node (state folder "
                f"{node.directory}). Stop that process or choose other ports with "
                f"SAFEPASSAGE_BROKER_PORT / SAFEPASSAGE_BROKER_CLUSTER_BASE_PORT."
            )
        if not node.is_formatted():
            result = subprocess.run(
                [
                    java,
                    *self._jvm_options(node),
                    "kafka.tools.StorageTool",
                    "format",
                    "--ignore-formatted",
                    # One argument with "=": an id stored by an older launcher may
                    # start with "-", which the storage tool would take for an option.
                    f"--cluster-id={self.cluster_id()}",
                    "-c",
                    str(node.config_path),
                ],
                check=False,
                capture_output=True,
                text=True,
                cwd=node.directory,
            )
            if result.returncode != 0:
                raise BrokerStartError(
                    f"Formatting the storage of Kafka node {node.node_id} failed: "
                    f"{(result.stderr or result.stdout).strip()[-600:]}"
                )

    def _jvm_options(self, node: BrokerNode) -> list[str]:
        return [
            f"-Xmx{node.heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={node.log_dir}",
            f"-Dlog4j2.configurationFile={node.directory / 'log4j2.properties'}",
            f"@{node.directory / 'jvm.args'}",
        ]

    def _wait_ready(
        self, node: BrokerNode, process: subprocess.Popen[bytes] | None, deadline: float
    ) -> None:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                node.pid_file.unlink(missing_ok=True)
                raise BrokerStartError(
                    f"Kafka node {node.node_id} exited with code {process.returncode} while "
                    f"starting. Last log lines:\n{node.tail()}"
                )
            if node.answers(timeout_s=1.0):
                return
            time.sleep(0.25)
        raise BrokerStartError(
            f"Kafka node {node.node_id} did not answer a metadata request on {node.bootstrap} "
            f"within {self.settings.start_timeout_s:.0f} s. Last log lines:\n{node.tail()}"
        )


def single_node(settings: BrokerSettings | None = None) -> Deployment:
    """The one-node deployment used by the dev stack and the test suite."""
    settings = settings or BrokerSettings()
    ports = [(settings.port, settings.resolved_controller_port, settings.resolved_internal_port)]
    return _deployment("single", settings, ports)


def cluster(settings: BrokerSettings | None = None) -> Deployment:
    """Three combined nodes on consecutive loopback ports (replication factor 3)."""
    settings = settings or BrokerSettings()
    base = settings.cluster_base_port
    ports = [(base + i, base + 100 + i, base + 200 + i) for i in range(CLUSTER_SIZE)]
    return _deployment("cluster", settings, ports)


def _deployment(
    name: str, settings: BrokerSettings, ports: list[tuple[int, int, int]]
) -> Deployment:
    """Nodes 1..N on these (client, controller, internal) ports, all voters, replicating N ways."""
    directory = settings.state_dir.resolve() / name
    numbered = list(enumerate(ports, start=1))
    voters = ",".join(f"{i}@{settings.host}:{controller}" for i, (_, controller, _) in numbered)
    node_ids = tuple(i for i, _ in numbered)

    def security(node_id: int, internal_port: int) -> NodeSecurity | None:
        if not settings.secured:
            return None
        tls = TlsFiles(
            ca=settings.security_dir / "ca.pem",
            keystore=directory / f"node-{node_id}" / "tls" / "node.pem",
        )
        return NodeSecurity(tls, internal_port, node_ids)

    nodes = [
        BrokerNode(
            node_id=i,
            host=settings.host,
            port=port,
            controller_port=controller,
            directory=directory / f"node-{i}",
            voters=voters,
            replication=len(ports),
            heap=settings.heap,
            security=security(i, internal),
        )
        for i, (port, controller, internal) in numbered
    ]
    return Deployment(name, settings, nodes, directory)
