"""Ordered key scans over the deadlines table's store: how a tick finds due deadlines.

A tick must read one partition's deadline keys in order from a bound
onwards, which a Faust table does not offer; its RocksDB store does, through
private methods of faust-streaming's ``rocksdb`` store (``_db_for_partition``,
``_encode_key``, ``_decode_key``). Kept here, alone, so a faust-streaming
upgrade that moves them breaks one small module. The in-memory store
(``memory://``, tests) has no order: a sorted copy stands in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from processors.router.ports import Scan

__all__ = ["rocksdb_scan", "sorted_scan"]


def rocksdb_scan(table: Any, partition: int) -> Scan:
    """Keys ``start <= key < stop`` of one partition's RocksDB, in byte order: one seek.

    The store holds keys as the table serialises them (Faust's default for
    table keys is JSON: ``"p00003|…"``). Deadline keys are printable ASCII
    without quotes or backslashes, so quoting them keeps their order: a
    closing quote sorts below every character a key may hold.
    """
    store = table.data

    def scan(start: str, stop: str) -> Iterable[str]:
        db = store._db_for_partition(partition)
        bound = store._encode_key(stop)
        for key in db.keys(from_key=store._encode_key(start)):
            if key >= bound:
                return
            yield store._decode_key(key)

    return scan


def sorted_scan(table: Any) -> Scan:
    """The same over a store without ordered iteration (memory://): O(n log n), tests only."""

    def scan(start: str, stop: str) -> Iterable[str]:
        return sorted(k for k in table if start <= k < stop)

    return scan
