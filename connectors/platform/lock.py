"""One ``safepassage run`` per state directory: a lock file holding the running one's PID.

Two runs on one state directory would start a second set of services on
the same ports, tables and keys. The lock is an advisory ``flock`` on
``<state>/run.lock``: the kernel releases it when its holder dies, however
it dies, so a lock left by a run that was killed (``kill -9``, a crash)
is stale by construction and simply taken over; the PID written inside
serves the message of the run that is refused. The descriptor is not
inherited by children (Python opens files non-inheritable), so a service
that outlived its run could not hold the lock either.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO, Self

from connectors.exceptions import ConnectorsError

__all__ = ["AlreadyRunningError", "RunLock"]


class AlreadyRunningError(ConnectorsError):
    """Another ``safepassage run`` holds this state directory."""

    exit_code = 3
    """Not 1: ``make run`` tells it apart and adds no line of its own (the one line says it)."""


class RunLock:
    """The lock of one state directory; use as a context manager around the run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self.stale_pid: int | None = None
        """The PID a previous run left in the file, if it ended without releasing it."""

    def acquire(self) -> Self:
        """Take the lock, or raise :class:`AlreadyRunningError` naming the running PID."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "unknown"
            file.close()
            raise AlreadyRunningError(
                f"safepassage run is already running on {self.path.parent} (pid {holder}); "
                f"stop it first (Ctrl-C in its terminal, or kill -INT {holder})"
            ) from None
        file.seek(0)
        previous = file.read().strip()
        if previous.isdigit() and int(previous) != os.getpid():
            self.stale_pid = int(previous)
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file = file
        return self

    def release(self) -> None:
        """Give the lock up (idempotent), emptied so no PID is left behind.

        The file itself stays: removing it could let a run starting now lock
        the old, unlinked file while a third one locks a new one.
        """
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self._file.seek(0)
            self._file.truncate()
        self._file.close()  # closing releases the flock
        self._file = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()
