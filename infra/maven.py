"""Resolve the broker's class path from Maven Central with Maven.

The Maven project ``infra/kafka/pom.xml`` pins the Kafka version. Maven
resolves it once into the local repository (``~/.m2``); the resulting class
path is cached under the state folder, keyed by a hash of the POM, so later
starts cost no Maven run at all.
"""

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from infra.exceptions import DependencyResolutionError, ToolMissingError

POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"

_VERSION_RE = re.compile(r"<kafka\.version>([^<]+)</kafka\.version>")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_NETWORK_HINTS = (
    "No plugin found for prefix",
    "Could not transfer",
    "Unknown host",
    "UnknownHostException",
    "Connection refused",
    "Connect timed out",
    "Network is unreachable",
    "Could not resolve dependencies",
    "Cannot access central",
)


def pinned_kafka_version(pom: Path = POM) -> str:
    """The Kafka version pinned in the POM."""
    match = _VERSION_RE.search(pom.read_text(encoding="utf-8"))
    if match is None:
        raise DependencyResolutionError(f"{pom} does not pin <kafka.version>.")
    return match.group(1)


def require_tool(
    name: str,
    executable: str,
    *,
    purpose: str = "The local Kafka broker runs on Java 17 or newer and its jars are fetched "
    "with Maven",
    env_prefix: str = "SAFEPASSAGE_BROKER_",
    setting: str | None = None,
) -> str:
    """Return the absolute path of an executable, or explain in one paragraph how to get it."""
    found = shutil.which(executable)
    if found is None:
        raise ToolMissingError(
            f"{name} was not found (looked for '{executable}' on the PATH). {purpose}; install "
            f"them (on Debian: apt-get install openjdk-17-jre-headless maven) or point "
            f"{env_prefix}{(setting or name).upper()} at the executable, then run the command "
            f"again."
        )
    return found


def resolve_classpath(state_dir: Path, mvn: str = "mvn", pom: Path = POM) -> str:
    """Return the broker's run-time class path, resolving it with Maven if needed."""
    state_dir = state_dir.resolve()  # Maven resolves relative paths against the POM's folder
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    cache = state_dir / f"classpath-{digest}.txt"
    if cache.exists():
        classpath = cache.read_text(encoding="utf-8").strip()
        if classpath and all(Path(jar).exists() for jar in classpath.split(":")):
            return classpath
    mvn_path = require_tool("mvn", mvn)
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    base = [
        mvn_path,
        "-B",
        "-q",
        "-f",
        str(pom),
        "-Dstyle.color=never",
        # Fully qualified: a bare "dependency:" prefix needs plugin-group metadata
        # first, and fails with a less telling message when offline.
        "org.apache.maven.plugins:maven-dependency-plugin:build-classpath",
        "-Dmdep.includeScope=runtime",
        f"-Dmdep.outputFile={tmp}",
    ]
    # Offline first: once the jars are in ~/.m2 this needs no network at all.
    offline = subprocess.run(
        [*base[:1], "-o", *base[1:]], check=False, capture_output=True, text=True
    )
    if offline.returncode != 0:
        online = subprocess.run(base, check=False, capture_output=True, text=True)
        if online.returncode != 0:
            raise DependencyResolutionError(explain_maven_failure(online.stdout + online.stderr))
    tmp.replace(cache)
    return cache.read_text(encoding="utf-8").strip()


def explain_maven_failure(output: str, action: str = "fetch the Apache Kafka broker jars") -> str:
    """Turn Maven's output into one paragraph: what failed, why, what to do."""
    output = _ANSI_RE.sub("", output)
    lines = [line.strip() for line in output.splitlines() if "[ERROR]" in line]
    detail = next((line for line in lines if any(h in line for h in _NETWORK_HINTS)), None)
    if detail is None:
        detail = lines[0] if lines else (output.strip().splitlines() or ["no output"])[-1]
    detail = detail.replace("[ERROR]", "").strip()
    if len(detail) > 400:
        detail = detail[:400] + "..."
    network = any(h in output for h in _NETWORK_HINTS)
    cause = (
        "Maven Central could not be reached, or it does not serve a pinned version"
        if network
        else "Maven failed"
    )
    return (
        f"Could not {action}: {cause}. Maven said: {detail} "
        f"The jars are resolved once from Maven Central into ~/.m2 and reused offline "
        f"afterwards; check the network or proxy settings (~/.m2/settings.xml) and run the "
        f"command again."
    )
