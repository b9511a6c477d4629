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

import psutil

__all__ = ["port_in_use", "runs_with", "send_signal", "stop_pid", "wait_gone"]


def runs_with(pid: int, marker: str) -> bool:
    """Whether PID is a live (not zombie) process with ``marker`` among its arguments."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return marker in process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def send_signal(pid: int, sig: signal.Signals) -> None:
    """Signal a process; one that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait for a process to exit (reaping it if it is our child); False on timeout."""
    try:
        psutil.Process(pid).wait(timeout=timeout_s)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True


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
