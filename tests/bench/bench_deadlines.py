"""Benchmark: the cost of a deadline tick with 10,000 and 1,000,000 open deadlines.

Run ``make bench-deadlines`` or ``python -m tests.bench.bench_deadlines``
(``--help`` for options). Not a test, and not collected by pytest (only
``test_*.py`` files are): figures depend on the machine; what matters is the
ratio between sizes, which is close to 1 when a tick costs O(due) rather
than O(open). It lives under ``tests/`` so that it is not installed with
``processors``.

For each size it opens N deadlines due at distinct instants spread
uniformly over 30 days in a :class:`~processors.deadlines.MemoryDeadlines`
(heapq), then times ticks that find exactly 0, 10 or 100 deadlines due
(``pop_due``). After each tick as many new deadlines are added beyond the
horizon (not timed), so the open count stays N.

The production store (:class:`~processors.deadlines.StoredDeadlines` over
the partition's RocksDB) is measured by :mod:`tests.bench.bench_rocksdb`
with the same workload; this module needs only the pure core.

Garbage collection is off while it runs: a million live objects would make
collections dominate. Building a million deadlines takes most of the time.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from processors.deadlines import (
    Deadline,
    DeadlineKind,
    DeadlineQueue,
    MemoryDeadlines,
    from_millis,
    to_millis,
)

__all__ = ["TickStats", "main", "measure", "report"]

START = datetime(2025, 3, 1, tzinfo=UTC)
HORIZON = timedelta(days=30)


@dataclass(frozen=True)
class TickStats:
    """Timings of the ticks of one (store, size, due) cell, in microseconds."""

    store: str
    open: int
    due: int
    ticks: int
    mean_us: float
    median_us: float


def _deadline(rng: random.Random, due_millis: int) -> Deadline:
    # model_construct: the inputs are generated valid, and validating a
    # million of them would dominate the run without measuring anything.
    return Deadline.model_construct(
        due_at=from_millis(due_millis),
        kind=DeadlineKind.ACKNOWLEDGE,
        survivor_id=UUID(int=rng.getrandbits(128)),
        referral_id=UUID(int=rng.getrandbits(128)),
        level=1,
        attempt=1,
    )


@dataclass
class _Workload:
    """Deadlines due at distinct instants, earliest first, and a source of later ones."""

    rng: random.Random
    due_times: list[int]
    deadlines: list[Deadline]
    later: int

    @classmethod
    def spread(cls, size: int, seed: int) -> _Workload:
        rng = random.Random(seed)
        start = to_millis(START)
        horizon = HORIZON // timedelta(milliseconds=1)
        due_times = sorted(rng.sample(range(start, start + horizon), size))
        deadlines = [_deadline(rng, millis) for millis in due_times]
        return cls(rng, due_times, deadlines, start + horizon)

    def fresh(self) -> Deadline:
        """A new deadline due after every other one."""
        self.later += 1
        self.due_times.append(self.later)
        return _deadline(self.rng, self.later)


def measure(
    store: DeadlineQueue,
    *,
    name: str,
    size: int,
    dues: tuple[int, ...],
    ticks: dict[int, int],
    seed: int = 5,
) -> list[TickStats]:
    """Fill an empty ``store`` with ``size`` deadlines, then time ticks finding ``dues`` due.

    Any :class:`~processors.deadlines.DeadlineQueue` will do, e.g. the
    binding's ``StoredDeadlines`` over RocksDB, from code that may import it.
    """
    work = _Workload.spread(size, seed)
    for deadline in work.deadlines:
        store.add(deadline)
    cursor = 0  # work.due_times[cursor] is the earliest open deadline
    results = []
    for due in dues:
        samples: list[float] = []
        for _ in range(ticks[due]):
            times = work.due_times
            now = from_millis(times[cursor + due - 1] if due else times[cursor] - 1)
            began = time.perf_counter_ns()
            popped = store.pop_due(now)
            samples.append((time.perf_counter_ns() - began) / 1000)
            if len(popped) != due:
                raise AssertionError(f"expected {due} due, got {len(popped)}")
            cursor += due
            for _ in range(due):  # keep the open count at `size` (not timed)
                store.add(work.fresh())
        mean, median = statistics.fmean(samples), statistics.median(samples)
        results.append(TickStats(name, size, due, len(samples), mean, median))
    return results


def report(
    rows: list[TickStats], sizes: list[int], dues: list[int], *, store: str = "memory"
) -> None:
    """Print the timings and the ratio of the largest to the smallest size per due count."""
    print(f"{'store':<8} {'open':>10} {'due':>5} {'ticks':>6} {'mean µs':>10} {'median µs':>10}")
    for row in rows:
        print(
            f"{row.store:<8} {row.open:>10,} {row.due:>5} {row.ticks:>6} "
            f"{row.mean_us:>10.1f} {row.median_us:>10.1f}"
        )
    small, large = min(sizes), max(sizes)
    if small == large:
        return
    print(f"\nratio {large:,} / {small:,} open, of the median (about 1: a tick is O(due)):")
    cells = {(r.store, r.open, r.due): r for r in rows}
    for due in dues:
        a, b = cells[(store, small, due)], cells[(store, large, due)]
        print(f"  {due:>4} due: {b.median_us / a.median_us:5.2f}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table plus the ratios between the sizes."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.bench_deadlines", description=__doc__
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--dues", type=int, nargs="+", default=[0, 10, 100])
    parser.add_argument("--ticks", type=int, default=500, help="ticks per cell (100-due: a fifth)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    rows: list[TickStats] = []
    gc.disable()  # a million live objects would make collections dominate the run
    try:
        for size in args.sizes:
            began = time.perf_counter()
            rows += measure(
                MemoryDeadlines(),
                name="memory",
                size=size,
                dues=tuple(args.dues),
                ticks={d: max(1, args.ticks // 5) if d >= 100 else args.ticks for d in args.dues},
                seed=args.seed,
            )
            elapsed = time.perf_counter() - began
            print(f"# {size:>9,} open: {elapsed:.1f} s (build included)", file=sys.stderr)
            gc.collect()
    finally:
        gc.enable()
    report(rows, args.sizes, args.dues)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
