"""Errors of the processors package.

Domain refusals (an illegal transition, an unknown referral, an answer for an
attempt that is not current) are *not* exceptions: they are
:class:`~processors.effects.Rejection` effects that the Faust binding
dead-letters while the worker goes on. An exception from this package means a
wiring or programming error (the binding handed the core something it must
never receive); it should fail loudly instead of being dead-lettered record by
record, because every following record would fail the same way.
"""

__all__ = [
    "LedgerError",
    "ProcessorsError",
    "SurvivorMismatchError",
    "UnsupportedEventError",
]


class ProcessorsError(Exception):
    """Root of every error raised by :mod:`processors`."""


class SurvivorMismatchError(ProcessorsError, ValueError):
    """An event was applied to the case state of another survivor.

    The binding looks the state up by the record key; a mismatch means the
    key and the body disagree, which the codec should already have refused.
    """


class UnsupportedEventError(ProcessorsError, TypeError):
    """An event type the called function does not handle (e.g. a directory event to ``decide``)."""


class LedgerError(ProcessorsError):
    """A capacity change names a provider or category the directory has no places for.

    Offers are only made to providers the directory knows, so a reservation
    for an unknown one means the change was applied to the wrong directory.
    """
