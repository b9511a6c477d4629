"""Background JVMs of our own: recognise, signal and wait for them by PID.

Both the broker and the schema registry run as detached JVMs with a PID
file. A PID file may be stale (the process died and the PID was reused), so
a process is only ever signalled after :func:`runs_with` found our own
marker (a config path or system property) on its command line: never by
process name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import psutil

__all__ = [
    "describe",
    "keep_child",
    "port_in_use",
    "read_pid",
    "runs_with",
    "send_signal",
    "spawn",
    "stop_pid",
    "tail",
    "wait_gone",
]


def runs_with(pid: int, marker: str) -> bool:
    """Whether PID is a live (not zombie) process with ``marker`` among its arguments."""
    if _exited(pid):
        return False
    try:
        return marker in psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def send_signal(pid: int, sig: signal.Signals) -> None:
    """Signal a process; one that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


_children: dict[int, subprocess.Popen[bytes]] = {}
"""JVMs this process started and that outlive the call that started them, by PID."""


def keep_child(process: subprocess.Popen[bytes]) -> None:
    """Keep the handle of a JVM meant to outlive its start.

    A dropped handle of a running child is a ``ResourceWarning`` ("subprocess
    is still running") and leaves the exit status to nobody; kept here, the
    child is reaped through its own handle when :func:`wait_gone` sees it end,
    or here, once it has ended by other means (``kill -9`` in a test).
    """
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            del _children[pid]
    _children[process.pid] = process


def spawn(
    command: Sequence[str], output: Path, pid_file: Path, cwd: Path
) -> subprocess.Popen[bytes]:
    """Start a detached JVM, its output appended to ``output``, and write its PID file.

    Its own session keeps the terminal's Ctrl-C from reaching it.
    """
    with output.open("ab") as out:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid}\n", encoding="utf-8")
    keep_child(process)
    return process


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait for a process to exit (reaping it if it is our child); False on timeout."""
    child = _children.get(pid)
    if child is not None:
        try:
            child.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        del _children[pid]
        return True
    if _exited(pid):
        return True
    try:
        psutil.Process(pid).wait(timeout=timeout_s)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except psutil.TimeoutExpired:
        return _exited(pid)
    return True


def _exited(pid: int) -> bool:
    """Whether PID is gone or a zombie (it has exited; only its parent's wait() is missing)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except psutil.AccessDenied:
        return False


def describe(pid: int) -> str:
    """State, parent and threads of a process, for an error message that must explain."""
    try:
        process = psutil.Process(pid)
        return (
            f"state {process.status()}, parent {process.ppid()}, "
            f"{process.num_threads()} threads, ours: {pid in _children}"
        )
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied) as exc:
        return f"({type(exc).__name__})"


def stop_pid(pid: int, timeout_s: float) -> bool:
    """SIGTERM, then SIGKILL after ``timeout_s``; False if even SIGKILL did not end it."""
    send_signal(pid, signal.SIGTERM)
    if wait_gone(pid, timeout_s):
        return True
    send_signal(pid, signal.SIGKILL)
    return wait_gone(pid, 10.0)


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def read_pid(pid_file: Path, marker: str) -> int | None:
    """The PID in ``pid_file`` if that process runs with ``marker``; a stale file is removed."""
    try:
        pid = int(pid_file.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        return None
    except ValueError:
        pid_file.unlink(missing_ok=True)
        return None
    if runs_with(pid, marker):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def tail(paths: Iterable[Path], lines: int = 15) -> str:
    """The last error lines (or last lines) of log files, to explain a failed start."""
    chunks: list[str] = []
    for path in paths:
        if path.exists():
            text = path.read_text(encoding="utf-8", errors="replace").splitlines()
            interesting = [ln for ln in text if "ERROR" in ln or "Exception" in ln] or text
            chunks.extend(f"  {path.name}: {ln}" for ln in interesting[-lines:])
    return "\n".join(chunks) or "  (no log output)"
