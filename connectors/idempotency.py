"""Idempotency of the intake API on (CloudEvents source, id): a retry is not published twice.

The store remembers per key a *fingerprint* of what was sent (the same key
with another one is a conflict, never an overwrite) and a *state*:
``pending`` while publishing, ``acked`` with the receipt answered, so a
retry gets the same answer without a second publish. **Insert first, then
publish**: a request claims the key in one ``BEGIN IMMEDIATE`` transaction
(two processes sharing the state folder cannot both claim it), publishes
only a new claim, then records the ack or releases the claim. A claim a
crashed process left pending expires after its *lease*; the record may then
be published twice under one CloudEvents id, which consumers drop. SQLite
in WAL mode with ``synchronous=FULL``: an ack is on disk before the client
hears 202. docs/intake-api.md states the guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from connectors.exceptions import IdempotencyStoreError

__all__ = [
    "Claim",
    "ClaimOutcome",
    "IdempotencyStore",
    "KeyedLocks",
    "fingerprint",
    "fingerprint_key",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    source     TEXT NOT NULL,
    id         TEXT NOT NULL,
    digest     TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'acked')),
    token      TEXT NOT NULL,
    response   TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_age ON events (created_at);
"""

Key = tuple[str, str]
"""(CloudEvents source, CloudEvents id)."""


def fingerprint(principal: str, document: Any, key: bytes | None = None) -> str:
    """SHA-256 of the principal and the document in canonical JSON (sorted keys, no spaces).

    Canonical, so that key order and white space do not make a retry look
    different; the principal is part of it, so that another caller using the
    same (source, id) conflicts instead of receiving this caller's receipt.
    With ``key``, an HMAC-SHA256 under it instead: for a document that holds
    personal data in clear, a plain hash kept for days could be checked
    against guesses (a name, a phone number); without the key it cannot.
    """
    canonical = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    message = f"{principal}\n{canonical}".encode()
    if key is not None:
        return "hmac:" + hmac.new(key, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


def fingerprint_key(path: Path) -> bytes:
    """The state folder's secret for :func:`fingerprint` (32 random bytes, made once, 0600).

    Processes sharing the folder share it: the first writes a temporary file
    and links it into place (atomic; a second writer's link fails and it
    reads the winner's), so nobody ever reads a half-written key.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) != 32:
        raise IdempotencyStoreError(f"{path} is not a 32-byte key; remove it to make a new one")
    return key


class ClaimOutcome(StrEnum):
    """What claiming a key found."""

    NEW = "new"
    """Nobody has this key (or it expired): the caller must publish, then ack or release."""
    REPLAY = "replay"
    """Published and acknowledged before with the same fingerprint: answer the stored receipt."""
    CONFLICT = "conflict"
    """The key was used for a different event (or by another principal)."""
    IN_PROGRESS = "in-progress"
    """Another process is publishing this very event right now."""


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`IdempotencyStore.claim`."""

    outcome: ClaimOutcome
    token: str | None = None
    """Proof of a NEW claim, needed to ack or release it."""
    response: Mapping[str, Any] | None = None
    """The stored receipt of a REPLAY."""


class IdempotencyStore:
    """The (source, id) → state table in one SQLite file; safe to share between threads.

    Blocking: the async service calls it through :func:`asyncio.to_thread`.
    Every SQLite failure becomes :class:`IdempotencyStoreError`.
    """

    def __init__(
        self,
        path: Path,
        *,
        ttl: timedelta = timedelta(days=7),
        lease: timedelta = timedelta(seconds=60),
        max_entries: int = 1_000_000,
        purge_every: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open (creating) the store; ``lease`` must outlast the longest publish."""
        if ttl <= timedelta(0) or lease <= timedelta(0) or max_entries < 1 or purge_every < 1:
            raise ValueError("ttl, lease, max_entries and purge_every must be positive")
        self.path = path
        self._ttl = ttl.total_seconds()
        self._lease = lease.total_seconds()
        self._max_entries = max_entries
        self._purge_every = purge_every
        self._clock = clock
        self._lock = threading.Lock()
        self._claims_since_purge = 0
        self._db: sqlite3.Connection | None = None
        self.open()

    def open(self) -> None:
        """(Re)open the database file, creating it; nothing happens if it is open."""
        with self._lock:
            if self._db is not None:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(
                    self.path, timeout=10.0, isolation_level=None, check_same_thread=False
                )
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=FULL")
                    db.executescript(_SCHEMA)
                except sqlite3.Error:
                    db.close()
                    raise
            except (sqlite3.Error, OSError) as exc:
                raise IdempotencyStoreError(
                    f"cannot open the idempotency store {self.path} ({type(exc).__name__}: {exc})"
                ) from exc
            self._db = db
        self.purge()

    def close(self) -> None:
        """Close the database; :meth:`open` makes the store usable again."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _run(self, action: Callable[[sqlite3.Connection], Any]) -> Any:
        """One transaction under the thread lock; SQLite errors translated."""
        with self._lock:
            db = self._db
            if db is None:
                raise IdempotencyStoreError(f"the idempotency store {self.path} is closed")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = action(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise IdempotencyStoreError(
                    f"idempotency store failed ({type(exc).__name__}: {exc})"
                ) from exc

    def claim(self, key: Key, digest: str) -> Claim:
        """Claim ``key`` for publishing the event of ``digest`` (see :class:`ClaimOutcome`)."""
        now = self._clock()

        def action(db: sqlite3.Connection) -> Claim:
            row = db.execute(
                "SELECT digest, state, response, created_at, updated_at FROM events "
                "WHERE source = ? AND id = ?",
                key,
            ).fetchone()
            if row is not None and row[3] >= now - self._ttl:
                stored_digest, state, response, _, updated_at = row
                if not secrets.compare_digest(stored_digest, digest):
                    return Claim(ClaimOutcome.CONFLICT)
                if state == "acked":
                    return Claim(ClaimOutcome.REPLAY, response=json.loads(response))
                if updated_at >= now - self._lease:
                    return Claim(ClaimOutcome.IN_PROGRESS)
                # A claim whose owner vanished (crash) is taken over after its lease.
            token = secrets.token_hex(16)
            db.execute(
                "INSERT OR REPLACE INTO events "
                "(source, id, digest, state, token, response, created_at, updated_at) "
                "VALUES (?, ?, ?, 'pending', ?, NULL, ?, ?)",
                (*key, digest, token, now, now),
            )
            return Claim(ClaimOutcome.NEW, token=token)

        claim: Claim = self._run(action)
        if claim.outcome is ClaimOutcome.NEW:
            self._claims_since_purge += 1
            if self._claims_since_purge >= self._purge_every:
                self.purge()
        return claim

    def ack(self, key: Key, token: str, response: Mapping[str, Any]) -> bool:
        """Record that the claimed event was acknowledged, with the receipt answered.

        False when the claim was taken over meanwhile (its lease expired); the
        event was published all the same and the answer stands.
        """
        now = self._clock()
        text = json.dumps(dict(response), separators=(",", ":"))

        def action(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE events SET state = 'acked', response = ?, updated_at = ? "
                "WHERE source = ? AND id = ? AND token = ? AND state = 'pending'",
                (text, now, *key, token),
            )
            return cursor.rowcount == 1

        return bool(self._run(action))

    def release(self, key: Key, token: str) -> None:
        """Forget a claim whose publish failed, so that the retry can publish."""
        self._run(
            lambda db: db.execute(
                "DELETE FROM events WHERE source = ? AND id = ? AND token = ? "
                "AND state = 'pending'",
                (*key, token),
            )
        )

    def purge(self) -> int:
        """Delete expired entries, then the oldest acknowledged ones beyond the bound."""
        now = self._clock()
        self._claims_since_purge = 0

        def action(db: sqlite3.Connection) -> int:
            removed = db.execute(
                "DELETE FROM events WHERE created_at < ?", (now - self._ttl,)
            ).rowcount
            (count,) = db.execute("SELECT count(*) FROM events").fetchone()
            excess = int(count) - self._max_entries
            if excess > 0:
                removed += db.execute(
                    "DELETE FROM events WHERE (source, id) IN (SELECT source, id FROM events "
                    "WHERE state = 'acked' ORDER BY created_at LIMIT ?)",
                    (excess,),
                ).rowcount
            return int(removed)

        return int(self._run(action))

    def __len__(self) -> int:
        """How many keys are remembered (expired ones included until the next purge)."""
        return int(self._run(lambda db: db.execute("SELECT count(*) FROM events").fetchone()[0]))


class KeyedLocks:
    """One :class:`asyncio.Lock` per key, created on demand and dropped when unused.

    Two identical requests in one process then run one after the other: the
    second finds the first one's ack (and replays it) or its release (and
    publishes itself), instead of being turned away as in progress.
    """

    def __init__(self) -> None:
        """No locks until a key is used."""
        self._locks: dict[Key, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        """Keys locked or waited for right now."""
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, keys: Iterable[Key]) -> AsyncIterator[None]:
        """Hold the locks of all ``keys``, taken in sorted order so batches cannot deadlock."""
        ordered = sorted(set(keys))
        for key in ordered:
            lock, users = self._locks.get(key, (asyncio.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        acquired: list[asyncio.Lock] = []
        try:
            for key in ordered:
                lock = self._locks[key][0]
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in acquired:
                lock.release()
            for key in ordered:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
