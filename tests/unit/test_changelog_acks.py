"""Offsets wait for the changelog records of their inputs (streams.changelog_acks)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from processors.router import build_router
from streams.changelog_acks import (
    AckedTable,
    ChangelogWriteError,
    UnackedChangelogs,
    guard_commits,
    unacked,
)
from streams.settings import KafkaSettings
from streams.stall import EXIT_STALLED


class Producer:
    """The one thing the guard touches on Faust's producer: ``flush``."""

    def __init__(self) -> None:
        self.flushes = 0

    async def flush(self) -> None:
        self.flushes += 1


class App:
    def __init__(self) -> None:
        self.producer = Producer()


async def test_the_wait_returns_only_once_every_record_is_acknowledged() -> None:
    tracker = UnackedChangelogs()
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    tracker.track(first)
    tracker.track(second)
    waiting = asyncio.create_task(tracker.wait())
    first.set_result("ok")
    await asyncio.sleep(0.01)
    assert not waiting.done() and len(tracker) == 1
    second.set_result("ok")
    await asyncio.wait_for(waiting, 1)
    assert len(tracker) == 0


async def test_a_failed_record_fails_this_wait_and_every_later_one() -> None:
    tracker = UnackedChangelogs()
    failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    tracker.track(failed)
    failed.set_exception(OSError("broker gone"))
    for _ in range(2):
        with pytest.raises(ChangelogWriteError, match=r"1 table changelog record.*OSError"):
            await tracker.wait()


async def test_a_record_that_failed_before_it_was_tracked_is_kept() -> None:
    tracker = UnackedChangelogs()
    failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    failed.set_exception(OSError("refused"))
    tracker.track(failed)
    with pytest.raises(ChangelogWriteError):
        await tracker.wait()
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    done.set_result("ok")
    answered = UnackedChangelogs()
    answered.track(done)
    await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
    assert len(answered) == 0


async def test_the_flush_before_a_commit_waits_for_the_changelog() -> None:
    app = App()
    guard_commits(app, hard_exit=lambda code: None)
    written: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    unacked(app).track(written)
    flushing = asyncio.create_task(app.producer.flush())
    await asyncio.sleep(0.01)
    assert not flushing.done()  # the commit that follows this flush is held back
    written.set_result("ok")
    await asyncio.wait_for(flushing, 1)
    assert app.producer.flushes == 1  # Faust's own flush still runs first


async def test_a_lost_changelog_record_stops_the_worker_for_a_restart() -> None:
    app = App()
    exits: list[int] = []
    guard_commits(app, hard_exit=exits.append)
    lost: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    unacked(app).track(lost)
    lost.set_exception(TimeoutError())
    with pytest.raises(ChangelogWriteError):
        await app.producer.flush()
    assert exits == [EXIT_STALLED]


def test_the_router_tables_track_their_changelog(tmp_path: Any) -> None:
    router = build_router(
        KafkaSettings(bootstrap_servers="127.0.0.1:1", topic_namespace="acks"),
        data_dir=tmp_path,
        store="memory://",
    )
    assert all(isinstance(table, AckedTable) for table in router.tables.values())
