"""A relay (offers or inbound) running beside a test, on its own event loop in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from connectors.relay import Relay

__all__ = ["relaying"]


@contextlib.contextmanager
def relaying(relay: Relay) -> Iterator[Relay]:
    """Run ``relay`` until the block ends; re-raise what stopped it."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            loop.run_until_complete(relay.run(stop))
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="offers-relay", daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # it stopped by itself meanwhile
                loop.call_soon_threadsafe(stop.set)
        thread.join(30)
    assert not thread.is_alive(), f"the {relay.name} did not stop within 30 s"
    if failure:
        raise failure[0]
