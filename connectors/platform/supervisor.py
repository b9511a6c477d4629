"""Keep a set of child processes running: start, probe, restart with backoff, stop them all.

``safepassage run`` starts every service of the platform through one
:class:`Supervisor`. Each child runs in its own process group (its own
session), so that

* the terminal's Ctrl-C reaches the supervisor only, which then stops the
  children in order instead of every process fighting over the signal;
* a stop reaches a child's own children too (the router worker runs its
  Faust worker as a child): the whole group gets SIGTERM, and SIGKILL after
  ``stop_timeout_s``, so nothing of ours outlives the run.

A child that exits on its own is restarted after a backoff that doubles per
restart (capped), counted since the last child that stayed up
``stable_after_s``; a service crashing on every start is thus retried
slowly, not in a loop. Before a restart, whatever is left of the crashed
child's group is ended too (two router workers must not run at once).

Every change of a service's state is handed to ``report`` as one
:class:`Change`; the caller decides how to show it (one line each). A
child's output goes to its own log file, never to the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from connectors.exceptions import ConnectorsError

__all__ = [
    "START_MARK",
    "Backoff",
    "Change",
    "Probe",
    "Service",
    "State",
    "Supervisor",
    "SupervisorError",
]

START_MARK = "---- "
"""Begins the line the supervisor writes into a service's log before each start."""

Probe = Callable[[], Awaitable[bool]]
"""Answers whether a service is ready (serving); any failure is a plain False."""


class SupervisorError(ConnectorsError):
    """A service could not be started at all (its program is missing, its log unwritable)."""


class State(StrEnum):
    """What a :class:`Change` reports about a service."""

    STARTED = "started"
    READY = "ready"
    UNREACHABLE = "unreachable"
    BACK = "back"
    EXITED = "exited"
    RESTARTED = "restarted"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Change:
    """One state change of one service, as the supervisor reports it."""

    service: str
    state: State
    detail: str = ""


@dataclass(frozen=True)
class Service:
    """One child process the supervisor keeps running.

    ``probe`` says when it is ready; with ``watch`` it is asked again every
    ``probe_interval_s`` once ready, and a change is reported (unreachable,
    back). Without a probe, a child is ready when it has started.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    probe: Probe | None = None
    watch: bool = False
    description: str = ""
    """Where it serves, for the summary (a URL, a topic)."""


@dataclass(frozen=True)
class Backoff:
    """Delay before restart N (1, 2, ...): ``initial_s`` doubling up to ``max_s``."""

    initial_s: float = 1.0
    max_s: float = 30.0
    stable_after_s: float = 60.0
    """A child that ran this long resets the count: its next crash restarts it at once."""

    def delay(self, restarts: int) -> float:
        return float(min(self.initial_s * 2 ** max(restarts - 1, 0), self.max_s))


@dataclass
class _Child:
    service: Service
    process: asyncio.subprocess.Process | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: int = 0
    pids: list[int] = field(default_factory=list)


class Supervisor:
    """Runs :class:`Service` children; see the module for the rules."""

    def __init__(
        self,
        services: Sequence[Service],
        log_dir: Path,
        report: Callable[[Change], None],
        *,
        backoff: Backoff | None = None,
        stop_timeout_s: float = 10.0,
        probe_interval_s: float = 5.0,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        names = [service.name for service in services]
        if len(set(names)) != len(names):
            raise SupervisorError(f"service names must be unique: {names}")
        self._children = {service.name: _Child(service) for service in services}
        self._log_dir = log_dir
        self._report = report
        self._backoff = backoff or Backoff()
        self._stop_timeout_s = stop_timeout_s
        self._probe_interval_s = probe_interval_s
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def log_path(self, name: str) -> Path:
        """The file a service's output (stdout and stderr) goes to."""
        return self._log_dir / f"{name}.log"

    def pids(self) -> dict[str, list[int]]:
        """Every PID each service's process has had (the current one last)."""
        return {name: list(child.pids) for name, child in self._children.items()}

    async def start(self) -> None:
        """Start every service; each then runs on its own until :meth:`stop`."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for child in self._children.values():
            await self._spawn(child)  # a missing program fails the start here, at once
        self._tasks = [
            asyncio.create_task(self._keep(child), name=f"supervise-{name}")
            for name, child in self._children.items()
        ]

    async def add(self, services: Sequence[Service]) -> None:
        """Start more services once others are ready (the demo's, after the directory is in).

        Each then runs, restarts and stops as those given at construction.
        Nothing is started once a stop has begun.
        """
        for service in services:
            if service.name in self._children:
                raise SupervisorError(f"service names must be unique: {service.name} twice")
        for service in services:
            if self._stopping.is_set():
                return
            child = _Child(service)
            self._children[service.name] = child
            await self._spawn(child)
            self._tasks.append(
                asyncio.create_task(self._keep(child), name=f"supervise-{service.name}")
            )

    async def wait_ready(self, timeout_s: float) -> list[str]:
        """Wait until every service is ready; the names of those that were not in time."""
        deadline = time.monotonic() + timeout_s
        for child in self._children.values():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.ready.wait(), remaining)
        return [name for name, child in self._children.items() if not child.ready.is_set()]

    async def wait_one_ready(self, name: str) -> None:
        """Until the service ``name`` is ready (for a progress display per service)."""
        await self._children[name].ready.wait()

    async def stop(self) -> None:
        """Stop every service: SIGTERM to each group, SIGKILL after the bound; idempotent."""
        self._stopping.set()
        children = [c for c in self._children.values() if c.process is not None]
        for child in children:
            _signal_group(child, signal.SIGTERM)
        await asyncio.gather(*(self._end(child) for child in children))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _end(self, child: _Child) -> None:
        """Wait for the child's group to be gone; SIGKILL it when the bound passes."""
        deadline = time.monotonic() + self._stop_timeout_s
        process = child.process
        assert process is not None  # noqa: S101 - only started children are ended
        killed = ""
        while time.monotonic() < deadline:
            if process.returncode is not None and not _group_alive(process.pid):
                break
            await asyncio.sleep(0.05)
        else:
            _signal_group(child, signal.SIGKILL)
            killed = f"; SIGKILL to its group after {self._stop_timeout_s:g} s"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 5.0)
            await _until_gone(process.pid, 5.0)
        code = process.returncode
        self._report(Change(child.service.name, State.STOPPED, _exit_text(code) + killed))

    async def _spawn(self, child: _Child) -> None:
        service = child.service
        log = self.log_path(service.name)
        try:
            with log.open("ab") as out:
                out.write(f"{START_MARK}{time.strftime('%Y-%m-%dT%H:%M:%S%z')} start\n".encode())
                out.flush()
                child.process = await asyncio.create_subprocess_exec(
                    *service.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    env={**self._base_env, **service.env},
                    start_new_session=True,
                )
        except OSError as exc:
            raise SupervisorError(
                f"cannot start {service.name} ({service.argv[0]}): {exc.strerror or exc}"
            ) from None
        child.ready.clear()
        pid = child.process.pid
        if child.pids:
            self._report(
                Change(service.name, State.RESTARTED, f"pid {pid}, restart {child.restarts}")
            )
        else:
            self._report(Change(service.name, State.STARTED, f"pid {pid}"))
        child.pids.append(pid)

    async def _keep(self, child: _Child) -> None:
        """Watch one child; restart it with backoff whenever it exits before a stop."""
        while True:
            process = child.process
            assert process is not None  # noqa: S101 - spawned before the first round
            started = time.monotonic()
            probing = asyncio.create_task(self._probe(child))
            code = await process.wait()
            probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probing
            if self._stopping.is_set():
                return
            await self._sweep(child)
            stable = time.monotonic() - started >= self._backoff.stable_after_s
            why = f"{_exit_text(code)} (log: {self.log_path(child.service.name)})"
            while not await self._restart(child, why, stable=stable):
                if self._stopping.is_set():
                    return
                stable, why = False, "could not start"

    async def _restart(self, child: _Child, why: str, *, stable: bool) -> bool:
        """After the backoff, start the child again; False if it could not even start."""
        child.restarts = 1 if stable else child.restarts + 1
        delay = self._backoff.delay(child.restarts)
        self._report(Change(child.service.name, State.EXITED, f"{why}; restart in {delay:.0f} s"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        if self._stopping.is_set():
            return False
        try:
            await self._spawn(child)
        except SupervisorError as exc:
            self._report(Change(child.service.name, State.EXITED, str(exc)))
            return False
        return True

    async def _sweep(self, child: _Child) -> None:
        """End what is left of an exited child's group (its own children), TERM then KILL."""
        process = child.process
        if process is None or not _group_alive(process.pid):
            return
        _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + self._stop_timeout_s
        while _group_alive(process.pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        _signal_group(child, signal.SIGKILL)
        await _until_gone(process.pid, 5.0)

    async def _probe(self, child: _Child) -> None:
        """Report ready once the probe answers; then, if watched, each change of its answer."""
        probe, name = child.service.probe, child.service.name
        if probe is None:
            child.ready.set()
            self._report(Change(name, State.READY))
            return
        while not await _answer(probe):
            await asyncio.sleep(0.25)
        child.ready.set()
        self._report(Change(name, State.READY, child.service.description))
        up = True
        while child.service.watch:
            await asyncio.sleep(self._probe_interval_s)
            answers = await _answer(probe)
            if self._stopping.is_set():
                return  # a service being stopped stops answering: no news
            if answers != up:
                up = answers
                self._report(Change(name, State.BACK if up else State.UNREACHABLE))


async def _answer(probe: Probe) -> bool:
    try:
        return await probe()
    except Exception:  # a probe's failure is a "no", never the supervisor's end
        return False


def _signal_group(child: _Child, sig: signal.Signals) -> None:
    """Signal the child's whole process group (the child leads it: its own session)."""
    if child.process is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.process.pid, sig)


def _group_alive(pgid: int) -> bool:
    """Whether any process (not yet reaped) is left in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member exists, just not ours to signal (cannot happen here)
        return True
    return True


async def _until_gone(pgid: int, timeout_s: float) -> None:
    """Wait (bounded) until the killed group's members have died."""
    deadline = time.monotonic() + timeout_s
    while _group_alive(pgid) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"ended by {signal.Signals(-code).name}"
    return f"exit code {code}"
