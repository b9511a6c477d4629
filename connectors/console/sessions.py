"""Operators' browser sessions: a random id in the cookie, everything else on the server.

The cookie carries only ``secrets.token_urlsafe(32)`` (256 random bits), so
it says nothing and cannot be forged; the operator's API key stays in this
process's memory, because status lookups go to the intake with the
operator's own key (the intake authenticates and audits the real principal).
Sessions end on sign-out, after :attr:`idle_s` unused, :attr:`max_s` after
sign-in, when the key is revoked from the keys file, and when the console
restarts (nothing is written to disk). Lookups compare digests of ids, so no
stored id is compared byte by byte with what a browser sent.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from connectors.auth import Principal

__all__ = ["COOKIE", "Session", "SessionStore"]

COOKIE = "__Host-sp_console"
"""``__Host-``: the browser keeps it only if Secure, for this host alone, for path ``/``."""


@dataclass
class Session:
    """One signed-in operator; :attr:`key` never leaves the server."""

    principal: Principal
    key: str = field(repr=False)
    created: float
    last_seen: float
    csrf: str = field(repr=False)
    """Sent back in a header by the console's own scripts on every change (sign-out)."""


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


class SessionStore:
    """Sessions by digest of their id, in memory, bounded (the oldest unused go first)."""

    def __init__(
        self,
        *,
        idle_s: float,
        max_s: float,
        max_sessions: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s = idle_s
        self.max_s = max_s
        self._max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, principal: Principal, key: str) -> tuple[str, Session]:
        """A new session for a principal that just signed in; its id (for the cookie) and it."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(
            principal=principal,
            key=key,
            created=now,
            last_seen=now,
            csrf=secrets.token_urlsafe(32),
        )
        with self._lock:
            self._sweep(now)
            while len(self._sessions) >= self._max_sessions:
                self._sessions.popitem(last=False)
            self._sessions[_digest(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id (its idle clock restarted), or None."""
        if not session_id:
            return None
        digest = _digest(session_id)
        now = self._clock()
        with self._lock:
            session = self._sessions.get(digest)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[digest]
                return None
            session.last_seen = now
            self._sessions.move_to_end(digest)
            return session

    def alive(self, session_id: str | None) -> bool:
        """Whether the session still lives, without counting this as use (an open stream)."""
        if not session_id:
            return False
        with self._lock:
            session = self._sessions.get(_digest(session_id))
            return session is not None and not self._expired(session, self._clock())

    def end(self, session_id: str | None) -> None:
        """Sign-out (or revocation): the id is worthless from now on."""
        if session_id:
            with self._lock:
                self._sessions.pop(_digest(session_id), None)

    def remaining_s(self, session: Session) -> float:
        """Seconds until the session ends if left unused."""
        now = self._clock()
        return max(0.0, min(session.last_seen + self.idle_s, session.created + self.max_s) - now)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen >= self.idle_s or now - session.created >= self.max_s

    def _sweep(self, now: float) -> None:
        for digest in [d for d, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[digest]
