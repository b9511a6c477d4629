"""Files the platform writes are its owner's alone: state, RocksDB tables, keys, logs.

Case state (the router's RocksDB files), the intake's idempotency store and
keystore, the broker's secrets: none of it is anyone else's to read on the
machine. Every ``safepassage`` command and the worker it starts create files
with the umask 0o077 (children inherit it), and the directories they keep
state in are made owner-only (0700) on start, also when an older run left
them readable.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["OWNER_ONLY_UMASK", "owner_only_files", "private_dir"]

OWNER_ONLY_UMASK = 0o077


def owner_only_files() -> None:
    """From now on, this process and its children create files only their owner can read."""
    os.umask(OWNER_ONLY_UMASK)


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner may enter (made, or narrowed, to 0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path
