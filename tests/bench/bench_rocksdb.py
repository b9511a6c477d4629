"""Benchmark: deadline ticks on the production store, RocksDB, at 10,000 and 1,000,000 open.

Run ``make bench-rocksdb`` or ``python -m tests.bench.bench_rocksdb``
(``--help`` for options). The companion of :mod:`tests.bench.bench_deadlines`
(in-memory heap): the same workload (:func:`~tests.bench.bench_deadlines.measure`),
here on :class:`~processors.deadlines.StoredDeadlines` over a real RocksDB opened
through rocksdict exactly as Faust's store opens a table partition (raw
mode, keys as Faust's JSON key serializer writes them, JSON values). It
measures what a worker's tick costs: one seek from the low-water mark, the
due entries read and deleted, and the deletion tombstones a queue-like
workload leaves behind.

It imports rocksdict, as the router's stores do (:mod:`processors.router.stores`),
so it sits with the other benchmark outside the installed packages.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import rocksdict

from processors.deadlines import StoredDeadlines, partition_prefix
from tests.bench.bench_deadlines import TickStats, measure, report

__all__ = ["RocksEntries", "main"]


def _raw(key: object) -> bytes:
    """A key of a raw-mode Rdict (typed loosely by rocksdict's stubs)."""
    if not isinstance(key, bytes):
        raise TypeError(f"raw-mode RocksDB returned a {type(key).__name__} key")
    return key


class RocksEntries(MutableMapping[str, Any]):
    """A RocksDB partition as the key → value mapping StoredDeadlines writes through.

    Keys are stored JSON-quoted and values JSON-encoded, as Faust's table
    store does with the router's ``deadlines`` table.
    """

    def __init__(self, path: Path) -> None:
        self.db = rocksdict.Rdict(str(path), rocksdict.Options(raw_mode=True))

    @staticmethod
    def _key(key: str) -> bytes:
        return json.dumps(key).encode()

    def __getitem__(self, key: str) -> Any:
        value = self.db.get(self._key(key))
        if value is None:
            raise KeyError(key)
        return json.loads(value)

    def __setitem__(self, key: str, value: Any) -> None:
        self.db.put(self._key(key), json.dumps(value).encode())

    def __delitem__(self, key: str) -> None:
        self.db.delete(self._key(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.db.get(self._key(key)) is not None

    def __iter__(self) -> Iterator[str]:
        return (json.loads(_raw(k)) for k in self.db.keys())  # noqa: SIM118 - an Rdict

    def __len__(self) -> int:
        return sum(1 for _ in self.db.keys())  # noqa: SIM118 - an Rdict, not a dict

    def scan(self, start: str, stop: str) -> Iterable[str]:
        """Keys ``start <= key < stop`` in byte order, from one seek (as the binding scans)."""
        bound = self._key(stop)
        for stored in self.db.keys(from_key=self._key(start)):
            key = _raw(stored)
            if key >= bound:
                return
            yield json.loads(key)

    def close(self) -> None:
        self.db.close()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on RocksDB in a temporary folder and print the table and ratios."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.bench_rocksdb", description=__doc__
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--dues", type=int, nargs="+", default=[0, 10, 100])
    parser.add_argument("--ticks", type=int, default=500, help="ticks per cell (100-due: a fifth)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    rows: list[TickStats] = []
    folder = Path(tempfile.mkdtemp(prefix="safepassage-bench-"))
    gc.disable()
    try:
        for size in args.sizes:
            began = time.perf_counter()
            entries = RocksEntries(folder / f"deadlines-{size}.db")
            try:
                store = StoredDeadlines(entries, entries.scan, partition_prefix(0))
                rows += measure(
                    store,
                    name="rocksdb",
                    size=size,
                    dues=tuple(args.dues),
                    ticks={
                        d: max(1, args.ticks // 5) if d >= 100 else args.ticks for d in args.dues
                    },
                    seed=args.seed,
                )
            finally:
                entries.close()
            elapsed = time.perf_counter() - began
            print(f"# {size:>9,} open: {elapsed:.1f} s (build included)", file=sys.stderr)
            gc.collect()
    finally:
        gc.enable()
        shutil.rmtree(folder, ignore_errors=True)
    report(rows, args.sizes, args.dues, store="rocksdb")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
