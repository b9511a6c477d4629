"""No input offset is committed before the table writes it caused are acknowledged.

Faust (faust-streaming 0.15) sends a table's changelog records through its
producer buffer and, before committing input offsets, "flushes" that
buffer, but :meth:`faust.transport.producer.ProducerBuffer.flush` gives up
as soon as 0.1 s pass without a record leaving the buffer, and a failed
changelog send is only logged. On a loaded machine the offsets of inputs
whose table writes were still queued are then committed; if the worker dies
before the queue drains (``kill -9``, the stall watchdog's exit), the writes
are lost while the inputs are never read again, and the worker that takes
the partition over restores a case from before those inputs (seen in CI: a
referral routed as if its survivor had never consented).

:class:`AckedTable` tracks every changelog record until the broker answers;
:func:`guard_commits` makes the producer flush that precedes each commit
wait for them all; when one could not be written, the worker exits at once
with :data:`streams.stall.EXIT_STALLED`, nothing committed, and its
supervisor starts a fresh one that processes those inputs again.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

import faust

from streams.exceptions import StreamsError
from streams.logs import exit_at_once, get_logger
from streams.stall import EXIT_STALLED

__all__ = ["AckedTable", "ChangelogWriteError", "UnackedChangelogs", "guard_commits"]

_log = get_logger(__name__)

_UNACKED: weakref.WeakKeyDictionary[Any, UnackedChangelogs] = weakref.WeakKeyDictionary()


class ChangelogWriteError(StreamsError):
    """A table's changelog record was not written: the inputs behind it stay uncommitted."""


class UnackedChangelogs:
    """The changelog records of one app that the broker has not acknowledged yet."""

    def __init__(self, patience_s: float = 10.0) -> None:
        self._pending: set[asyncio.Future[Any]] = set()
        self.patience_s = patience_s
        """How long a commit waits before it logs that records are still unanswered."""

    def __len__(self) -> int:
        return len(self._pending)

    def track(self, sent: asyncio.Future[Any]) -> None:
        """Keep ``sent`` (a Faust ``FutureMessage``) until it is answered."""
        self._pending.add(sent)
        sent.add_done_callback(self._answered)

    def _answered(self, sent: asyncio.Future[Any]) -> None:
        if not sent.cancelled() and sent.exception() is None:
            self._pending.discard(sent)  # a failed record stays: every commit must see it

    async def wait(self) -> None:
        """Return once every record sent so far is acknowledged; raise if one failed.

        A failed record stays tracked, so every later commit fails too until
        the worker restarts and processes the inputs again.
        """
        pending = list(self._pending)
        if not pending:
            return
        while True:
            _, waiting = await asyncio.wait(pending, timeout=self.patience_s)
            if not waiting:
                break
            _log.warning("changelog.acks_waiting", unacked=len(waiting), waited_s=self.patience_s)
        results = await asyncio.gather(*pending, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise ChangelogWriteError(
                f"{len(failures)} table changelog record(s) could not be written "
                f"({type(failures[0]).__name__}): offsets are not committed"
            )


def unacked(app: Any) -> UnackedChangelogs:
    """The tracker of ``app`` (created on first use)."""
    tracker = _UNACKED.get(app)
    if tracker is None:
        tracker = _UNACKED[app] = UnackedChangelogs()
    return tracker


class AckedTable(faust.Table[Any, Any]):
    """A Faust table whose every changelog record is tracked until acknowledged."""

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        sent = super().send_changelog(*args, **kwargs)
        unacked(self.app).track(sent)
        return sent


def guard_commits(app: Any, *, hard_exit: Callable[[int], None] = exit_at_once) -> None:
    """Make the producer flush before each offset commit wait for the changelog records.

    Call it once the app has started (its producer exists); the consumer
    calls ``app.producer.flush()`` right before committing offsets, outside
    transactions, which the router does not use. A record that failed stops
    the worker (``hard_exit(EXIT_STALLED)``): a Faust service that raises
    here would only be logged, and later commits would pass over the loss.
    """
    producer = app.producer
    upstream = producer.flush
    tracker = unacked(app)

    async def flush() -> None:
        await upstream()
        try:
            await tracker.wait()
        except ChangelogWriteError as exc:
            _log.error(
                "changelog.write_failed", error=str(exc), unacked=len(tracker), exit=EXIT_STALLED
            )
            hard_exit(EXIT_STALLED)
            raise

    producer.flush = flush  # this instance only: Faust offers no hook before a commit
    _log.info("changelog.commits_guarded")
