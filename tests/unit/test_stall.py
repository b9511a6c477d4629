"""The stall watchdog: pure detection, the Faust-facing sampler, and the worker's supervisor."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from hypothesis import given
from hypothesis import strategies as st

from connectors.worker import supervise
from streams.offsets import Partition
from streams.stall import (
    EXIT_STALLED,
    Progress,
    StallDetector,
    StallWatchdog,
)

TP0 = Partition("ns.intake.v1", 0)
TP1 = Partition("ns.intake.v1", 1)


# ------------------------------------------------------------------ detector


def test_records_waiting_with_no_progress_for_the_timeout_is_a_stall() -> None:
    detector = StallDetector(timeout_s=30)
    assert detector.observe(0, {TP0: Progress(5, 9)}) == []
    assert detector.observe(29.9, {TP0: Progress(5, 9)}) == []
    (stall,) = detector.observe(30, {TP0: Progress(5, 9)})
    assert (stall.topic, stall.partition, stall.committed, stall.end) == ("ns.intake.v1", 0, 5, 9)
    assert stall.seconds == 30


def test_progress_or_catching_up_restarts_the_count() -> None:
    detector = StallDetector(timeout_s=30)
    detector.observe(0, {TP0: Progress(5, 9)})
    assert detector.observe(25, {TP0: Progress(6, 9)}) == []  # moved
    assert detector.observe(50, {TP0: Progress(6, 9)}) == []  # 25 s since it moved
    assert detector.observe(56, {TP0: Progress(9, 9)}) == []  # caught up
    assert detector.observe(57, {TP0: Progress(9, 12)}) == []  # new records: a new count
    assert detector.observe(86, {TP0: Progress(9, 12)}) == []
    assert len(detector.observe(87, {TP0: Progress(9, 12)})) == 1


def test_an_idle_partition_never_stalls() -> None:
    detector = StallDetector(timeout_s=5)
    for now in range(0, 100, 5):
        assert detector.observe(now, {TP0: Progress(7, 7), TP1: Progress(0, 0)}) == []


def test_a_partition_no_longer_owned_is_forgotten_and_reset_forgets_all() -> None:
    detector = StallDetector(timeout_s=10)
    detector.observe(0, {TP0: Progress(1, 2), TP1: Progress(1, 2)})
    detector.observe(5, {TP1: Progress(1, 2)})  # TP0 revoked
    stalls = detector.observe(10, {TP0: Progress(1, 2), TP1: Progress(1, 2)})
    assert [s.partition for s in stalls] == [1]  # TP0 counts from 10 again
    detector.reset()
    assert detector.observe(30, {TP0: Progress(1, 2), TP1: Progress(1, 2)}) == []


def test_the_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        StallDetector(timeout_s=0)


@given(
    st.lists(
        st.tuples(st.floats(0, 20), st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40
    )
)
def test_no_stall_is_reported_before_the_committed_offset_sat_still_for_the_timeout(
    steps: list[tuple[float, int, int]],
) -> None:
    """Invariant: a stall means `timeout` seconds at one committed offset below the end."""
    detector = StallDetector(timeout_s=30)
    now = 0.0
    history: list[tuple[float, Progress]] = []
    for delta, committed, lag in steps:
        now += delta
        where = Progress(committed, committed + lag)
        history.append((now, where))
        for stall in detector.observe(now, {TP0: where}):
            assert lag > 0
            assert stall.seconds >= 30
            # Strictly after the count started (two observations may share an instant, the
            # first with another offset; and now - seconds is rounded).
            since = now - stall.seconds + 1e-9
            assert all(
                p.committed == committed and p.end > committed for t, p in history if t > since
            )


# ------------------------------------------------------------------ watchdog


@dataclass(frozen=True)
class FakeTP:
    topic: str
    partition: int


@dataclass
class FakeConsumer:
    owned: set[FakeTP] = field(default_factory=set)

    def assignment(self) -> set[FakeTP]:
        return self.owned


@dataclass
class FakeApp:
    consumer: FakeConsumer = field(default_factory=FakeConsumer)
    rebalancing: bool = False
    in_recovery: bool = False
    crashed: list[BaseException] = field(default_factory=list)

    async def crash(self, reason: BaseException) -> None:
        self.crashed.append(reason)


class Probe:
    def __init__(self) -> None:
        self.answers: dict[Partition, Progress] = {}
        self.asked: list[set[Partition]] = []
        self.fail = False

    def __call__(self, owned: Collection[Partition]) -> Mapping[Partition, Progress]:
        self.asked.append(set(owned))
        if self.fail:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        return {tp: self.answers[tp] for tp in owned}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def watchdog(
    app: FakeApp, probe: Probe, clock: Clock, exits: list[int], ready: list[bool] | None = None
) -> StallWatchdog:
    flag = ready if ready is not None else [True]
    return StallWatchdog(
        app,
        ["ns.intake.v1"],
        probe,
        StallDetector(timeout_s=30),
        ready=lambda: flag[0],
        clock=clock,
        hard_exit=exits.append,
    )


async def test_a_stall_on_an_owned_partition_exits_at_once_without_a_graceful_stop() -> None:
    """No app.crash: Faust's graceful stop would commit the stuck record unprocessed."""
    app, probe, clock, exits = FakeApp(), Probe(), Clock(), list[int]()
    app.consumer.owned = {FakeTP("ns.intake.v1", 0), FakeTP("ns.other.v1", 0)}
    probe.answers[TP0] = Progress(3, 8)
    dog = watchdog(app, probe, clock, exits)

    assert await dog.check() == []
    clock.now = 31
    (stall,) = await dog.check()

    assert probe.asked == [{TP0}, {TP0}]  # only the watched topics
    assert (stall.topic, stall.partition, stall.committed, stall.end) == ("ns.intake.v1", 0, 3, 8)
    assert dog.stalls == [stall]
    assert exits == [EXIT_STALLED]
    assert app.crashed == []
    assert await dog.check() == [stall]  # already stopping: no second exit
    assert exits == [EXIT_STALLED]


@pytest.mark.parametrize("pause", ["rebalancing", "in_recovery", "not_ready"])
async def test_no_stall_is_counted_while_rebalancing_recovering_or_not_ready(pause: str) -> None:
    app, probe, clock, exits = FakeApp(), Probe(), Clock(), list[int]()
    app.consumer.owned = {FakeTP("ns.intake.v1", 0)}
    probe.answers[TP0] = Progress(3, 8)
    ready = [True]
    dog = watchdog(app, probe, clock, exits, ready)
    await dog.check()

    clock.now = 20
    if pause == "not_ready":
        ready[0] = False
    else:
        setattr(app, pause, True)
    assert await dog.check() == []
    ready[0], app.rebalancing, app.in_recovery = True, False, False
    clock.now = 31
    assert await dog.check() == []  # the count restarted after the pause
    clock.now = 61
    assert len(await dog.check()) == 1


async def test_a_broker_that_does_not_answer_is_not_a_stall() -> None:
    app, probe, clock, exits = FakeApp(), Probe(), Clock(), list[int]()
    app.consumer.owned = {FakeTP("ns.intake.v1", 0)}
    probe.answers[TP0] = Progress(3, 8)
    dog = watchdog(app, probe, clock, exits)
    await dog.check()
    probe.fail = True
    clock.now = 40
    assert await dog.check() == []
    probe.fail = False
    clock.now = 50
    assert await dog.check() == []  # counting again from the outage's end
    assert app.crashed == []


async def test_a_worker_owning_no_watched_partition_asks_nothing() -> None:
    app, probe, clock, exits = FakeApp(), Probe(), Clock(), list[int]()
    app.consumer.owned = {FakeTP("ns.other.v1", 0)}
    dog = watchdog(app, probe, clock, exits)
    assert await dog.check() == []
    assert probe.asked == []


async def test_a_rebalance_that_begins_during_the_probe_discards_the_sample() -> None:
    app, clock, exits = FakeApp(), Clock(), list[int]()
    app.consumer.owned = {FakeTP("ns.intake.v1", 0)}

    class RebalancingProbe(Probe):
        def __call__(self, owned: Collection[Partition]) -> Mapping[Partition, Progress]:
            app.rebalancing = True
            return {TP0: Progress(3, 8)}

    dog = watchdog(app, RebalancingProbe(), clock, exits)
    for now in (0.0, 40.0, 80.0):
        clock.now = now
        assert await dog.check() == []


# ---------------------------------------------------------------- supervisor


def script(tmp_path: Path, codes: list[int]) -> list[str]:
    """A child that exits with the next code of ``codes`` on each start."""
    counter = tmp_path / "starts"
    body = (
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1))\n"
        f"sys.exit({codes!r}[n])\n"
    )
    return [sys.executable, "-c", body]


def test_a_stalled_child_is_started_again_with_backoff_and_a_failure_ends_it(
    tmp_path: Path,
) -> None:
    slept: list[float] = []
    code = supervise(script(tmp_path, [EXIT_STALLED, EXIT_STALLED, 3]), sleep=slept.append)
    assert code == 3
    assert (tmp_path / "starts").read_text() == "3"
    assert slept == [2.0, 4.0]


def test_a_clean_exit_is_not_restarted(tmp_path: Path) -> None:
    slept: list[float] = []
    assert supervise(script(tmp_path, [0, 0]), sleep=slept.append) == 0
    assert (tmp_path / "starts").read_text() == "1"
    assert slept == []


def test_sigterm_reaches_the_child_and_no_restart_follows(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = (
        "import pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(%d))\n"
        f"pathlib.Path({str(ready)!r}).write_text('up')\n"
        "time.sleep(60)\n" % EXIT_STALLED
    )

    def terminate_when_up() -> None:
        for _ in range(600):
            if ready.exists():
                os.kill(os.getpid(), signal.SIGTERM)
                return
            threading.Event().wait(0.05)

    threading.Thread(target=terminate_when_up, daemon=True).start()
    before = signal.getsignal(signal.SIGTERM)
    # The child answers SIGTERM with EXIT_STALLED: only the stop request prevents a restart.
    assert supervise([sys.executable, "-c", child], sleep=lambda _s: None) == EXIT_STALLED
    assert signal.getsignal(signal.SIGTERM) is before
