"""The router's store scans and changelog declarations, over stand-ins for Faust's objects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

from processors.router.changelogs import changelog_specs
from processors.router.stores import rocksdb_scan, sorted_scan
from streams.settings import KafkaSettings, Profile
from streams.topics import CleanupPolicy


@dataclass
class SortedDb:
    """A RocksDB stand-in: keys in byte order, ``keys(from_key=...)`` seeks."""

    stored: list[bytes]

    def keys(self, from_key: bytes) -> Iterator[bytes]:
        return iter(k for k in sorted(self.stored) if k >= from_key)


@dataclass
class JsonKeyedStore:
    """faust-streaming's rocksdb store as :func:`rocksdb_scan` reaches into it (JSON keys)."""

    dbs: dict[int, SortedDb]
    opened: list[int] = field(default_factory=list)

    def _db_for_partition(self, partition: int) -> SortedDb:
        self.opened.append(partition)
        return self.dbs[partition]

    def _encode_key(self, key: str) -> bytes:
        return json.dumps(key).encode()

    def _decode_key(self, key: bytes) -> str:
        decoded: str = json.loads(key)
        return decoded


def test_the_rocksdb_scan_seeks_its_partition_and_stops_at_the_bound() -> None:
    keys = ["p00001|2025-03-01|a", "p00001|2025-03-02|b", "p00001|2025-03-03|c", "p00001|zz"]
    store = JsonKeyedStore({1: SortedDb([json.dumps(k).encode() for k in keys])})
    scan = rocksdb_scan(SimpleNamespace(data=store), 1)

    found = list(scan("p00001|2025-03-02", "p00001|2025-03-03"))

    assert found == ["p00001|2025-03-02|b"]
    assert store.opened == [1]
    assert list(scan("p00001|", "p00001|2025-03-03|c")) == keys[:2]  # quoting keeps the order


def test_the_sorted_scan_reads_a_plain_mapping_in_order() -> None:
    table = {"p2|b": 1, "p2|a": 1, "p3|a": 1, "p1|z": 1}
    assert list(sorted_scan(table)("p2|", "p3|")) == ["p2|a", "p2|b"]


def test_each_table_gets_a_compacted_changelog_sized_like_the_intake() -> None:
    tables = {
        name: SimpleNamespace(
            changelog_topic=SimpleNamespace(get_topic_name=lambda n=name: f"app-{n}-changelog")
        )
        for name in ("cases", "ladder", "deadlines")
    }
    dev = changelog_specs(tables, KafkaSettings(profile=Profile.DEV, partitions=6))
    assert [s.name for s in dev] == [f"app-{n}-changelog" for n in tables]
    assert [s.key for s in dev] == ["survivor id", "survivor id", "deadline key"]
    assert all(s.partitions == 6 and s.cleanup_policy is CleanupPolicy.COMPACT for s in dev)
    assert all(s.retention_ms == -1 and s.replication_factor == 1 for s in dev)
    production = changelog_specs(tables, KafkaSettings(profile=Profile.PRODUCTION))
    assert all((s.replication_factor, s.min_insync_replicas) == (3, 2) for s in production)
