"""Errors of the processors package.

Domain refusals (an illegal transition, an unknown referral, an answer for an
attempt that is not current) are *not* exceptions: they are
:class:`~processors.effects.Rejection` effects that the Faust binding
dead-letters while the worker goes on. An exception from this package means a
wiring or programming error (the binding handed the core something it must
never receive); it fails loudly instead of being dead-lettered record by
record, because every following record would fail the same way:
:func:`streams.deadletter.default_policy` stops the consuming agent on any
SafePassage error that is not about the record (see
:attr:`streams.deadletter.Action.STOP`).
"""

from schemas.exceptions import SafePassageError

__all__ = [
    "LedgerError",
    "ProcessorsError",
    "SlaPolicyError",
    "SurvivorMismatchError",
    "UnsupportedEventError",
]


class ProcessorsError(SafePassageError):
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


class SlaPolicyError(ProcessorsError, ValueError):
    """The SLA policy file is unreadable or invalid; ``problems`` lists each ``key: problem``.

    Raised at load, before a worker starts: a policy that would escalate too
    late must stop the service, not be half-applied. All problems are
    collected so an operator fixes the file in one go. It lives here with
    the other errors of the package so callers (settings, the CLI) can catch
    it without importing the YAML loader; :mod:`processors.sla` re-exports it.
    """

    def __init__(self, source: str, problems: tuple[str, ...]) -> None:
        self.source = source
        self.problems = problems
        # One line, problems separated by "; ": the command line prints it as is.
        listed = "; ".join(" ".join(problem.split()) for problem in problems)
        super().__init__(f"invalid SLA policy {source}: {listed}")
