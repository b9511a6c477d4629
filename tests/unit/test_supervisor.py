"""The supervisor of ``safepassage run``: restart with backoff, a bounded stop, nothing left over.

The children are tiny ``python -c`` programs: one that crashes at once, one
that ignores SIGTERM, one that starts a grandchild of its own. What is
asserted is what an operator relies on: a crashed service comes back, ever
more slowly; a stop ends within its bound even when a child will not
listen; no process of the run (grandchildren included) is left afterwards.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import psutil
import pytest

from connectors.platform.supervisor import (
    Backoff,
    Change,
    Service,
    State,
    Supervisor,
    SupervisorError,
)

PY = sys.executable
SLEEPER = "import time; time.sleep(60)"
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ignoring TERM', flush=True); time.sleep(60)"
)
PARENT_OF_STUBBORN = (
    "import subprocess, sys, time; "
    f"subprocess.Popen([sys.executable, '-c', {STUBBORN!r}]); time.sleep(60)"
)


def _states(seen: list[Change], name: str) -> list[State]:
    return [change.state for change in seen if change.service == name]


def _gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(pid) and _not_zombie(pid) for pid in pids)


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_a_crashing_service_is_restarted_with_a_growing_backoff(tmp_path: Path) -> None:
    seen: list[Change] = []
    crash = Service("crasher", [PY, "-c", "print('up', flush=True); raise SystemExit(3)"])
    supervisor = Supervisor(
        [crash], tmp_path, seen.append, backoff=Backoff(initial_s=0.2, max_s=0.8)
    )
    await supervisor.start()
    started = time.monotonic()
    while _states(seen, "crasher").count(State.EXITED) < 4 and time.monotonic() - started < 20:
        await asyncio.sleep(0.05)
    await supervisor.stop()
    exits = [c.detail for c in seen if c.state is State.EXITED]
    assert exits[:3] == [
        f"exit code 3 (log: {tmp_path / 'crasher.log'}); restart in {d} s" for d in ("0", "0", "1")
    ]  # 0.2, 0.4, 0.8 s rounded
    assert _states(seen, "crasher")[:4] == [
        State.STARTED,
        State.READY,
        State.EXITED,
        State.RESTARTED,
    ]
    assert len(supervisor.pids()["crasher"]) >= 4
    assert (tmp_path / "crasher.log").read_text().count("up\n") >= 4  # output to its log
    assert time.monotonic() - started >= 0.2 + 0.4 + 0.8  # it did wait between restarts


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial_s=1.0, max_s=30.0)
    assert [backoff.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


async def test_a_service_that_stayed_up_restarts_at_the_first_delay_again(tmp_path: Path) -> None:
    seen: list[Change] = []
    lives = Service("lives", [PY, "-c", "import time; time.sleep(0.6)"])
    supervisor = Supervisor(
        [lives],
        tmp_path,
        seen.append,
        backoff=Backoff(initial_s=0.1, max_s=10.0, stable_after_s=0.5),
    )
    await supervisor.start()
    while len(supervisor.pids()["lives"]) < 3:
        await asyncio.sleep(0.05)
    await supervisor.stop()
    exits = [c.detail for c in seen if c.state is State.EXITED]
    assert all(detail.endswith("restart in 0 s") for detail in exits[:2])


async def test_stop_ends_a_child_that_ignores_sigterm_within_the_bound_and_its_grandchild(
    tmp_path: Path,
) -> None:
    seen: list[Change] = []
    parent = Service("parent", [PY, "-c", PARENT_OF_STUBBORN])
    polite = Service("polite", [PY, "-c", SLEEPER])
    supervisor = Supervisor([parent, polite], tmp_path, seen.append, stop_timeout_s=1.5)
    await supervisor.start()
    assert await supervisor.wait_ready(5.0) == []
    leader = psutil.Process(supervisor.pids()["parent"][0])
    while "ignoring TERM" not in supervisor.log_path("parent").read_text():
        await asyncio.sleep(0.05)
    family = [leader.pid, *(p.pid for p in leader.children(recursive=True))]
    family.append(supervisor.pids()["polite"][0])
    begun = time.monotonic()
    await supervisor.stop()
    took = time.monotonic() - begun
    assert took < 1.5 + 3.0
    assert _gone(family)
    stops = {c.service: c.detail for c in seen if c.state is State.STOPPED}
    assert stops == {
        "parent": "ended by SIGTERM; SIGKILL to its group after 1.5 s",  # the grandchild's
        "polite": "ended by SIGTERM",
    }


async def test_a_crashed_childs_leftover_children_end_before_it_is_restarted(
    tmp_path: Path,
) -> None:
    """A crashed worker's Faust child must not run beside the restarted one."""
    seen: list[Change] = []
    script = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {SLEEPER!r}]); time.sleep(0.5)"
    )
    service = Service("leaky", [PY, "-c", script])
    supervisor = Supervisor(
        [service], tmp_path, seen.append, backoff=Backoff(initial_s=5.0), stop_timeout_s=1.0
    )
    await supervisor.start()
    leader = psutil.Process(supervisor.pids()["leaky"][0])
    while not leader.children():
        await asyncio.sleep(0.05)
    grandchild = leader.children()[0].pid
    while State.EXITED not in _states(seen, "leaky"):
        await asyncio.sleep(0.05)
    assert _gone([grandchild])
    await supervisor.stop()


async def test_readiness_and_a_watched_probe_report_unreachable_then_back(tmp_path: Path) -> None:
    seen: list[Change] = []
    answers = iter([False, False, True, False, False, True, True])

    async def probe() -> bool:
        return next(answers, True)

    service = Service("api", [PY, "-c", SLEEPER], probe=probe, watch=True, description="https://x")
    supervisor = Supervisor([service], tmp_path, seen.append, probe_interval_s=0.05)
    await supervisor.start()
    assert await supervisor.wait_ready(5.0) == []
    while State.BACK not in _states(seen, "api"):
        await asyncio.sleep(0.05)
    await supervisor.stop()
    assert _states(seen, "api") == [
        State.STARTED,
        State.READY,
        State.UNREACHABLE,
        State.BACK,
        State.STOPPED,
    ]
    assert seen[1].detail == "https://x"


async def test_a_service_not_ready_in_time_is_named(tmp_path: Path) -> None:
    async def never() -> bool:
        return False

    supervisor = Supervisor([Service("slow", [PY, "-c", SLEEPER], probe=never)], tmp_path, print)
    await supervisor.start()
    assert await supervisor.wait_ready(0.3) == ["slow"]
    await supervisor.stop()


async def test_a_missing_program_is_one_clear_error(tmp_path: Path) -> None:

    supervisor = Supervisor([Service("ghost", [str(tmp_path / "nope")])], tmp_path, print)
    with pytest.raises(SupervisorError, match="cannot start ghost"):
        await supervisor.start()


def test_service_names_are_unique(tmp_path: Path) -> None:

    with pytest.raises(SupervisorError, match="unique"):
        Supervisor([Service("a", ["x"]), Service("a", ["y"])], tmp_path, print)


async def test_a_service_added_later_runs_and_stops_with_the_others(tmp_path: Path) -> None:
    seen: list[Change] = []
    supervisor = Supervisor([Service("first", [PY, "-c", SLEEPER])], tmp_path, seen.append)
    await supervisor.start()
    assert await supervisor.wait_ready(5) == []
    with pytest.raises(SupervisorError, match="unique"):
        await supervisor.add([Service("first", [PY, "-c", SLEEPER])])
    await supervisor.add([Service("later", [PY, "-c", SLEEPER])])
    assert await supervisor.wait_ready(5) == []
    pids = [pid for each in supervisor.pids().values() for pid in each]
    assert len(pids) == 2
    await supervisor.stop()
    assert _gone(pids)
    assert _states(seen, "later") == [State.STARTED, State.READY, State.STOPPED]
    await supervisor.add([Service("too-late", [PY, "-c", SLEEPER])])  # a stop has begun
    assert "too-late" not in supervisor.pids()
