"""What every command group of ``safepassage`` shares: the console and the one-line errors.

Kept apart from the groups so each group module imports only this, and the
promise of the command line (a :class:`~schemas.exceptions.SafePassageError`
is one line on stderr and exit code 1, never a stack trace) is kept in one place.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from rich.console import Console
from rich.markup import escape

from schemas.exceptions import SafePassageError

__all__ = ["console", "friendly_errors"]

P = ParamSpec("P")
R = TypeVar("R")


def console(*, stderr: bool = False) -> Console:
    """A console that does not squeeze tables when output goes to a file or pipe."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=250 if wide else None)


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Show every SafePassage error as one line on stderr and exit 1, not a traceback.

    The messages carry no personal data (the root's promise), so they are
    shown as they are; folded onto one line, escaped from rich's markup and
    never wrapped, so that a script can read the line back.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SafePassageError as exc:
            console(stderr=True).print(
                f"[bold red]error:[/] {escape(exc.one_line())}", highlight=False, soft_wrap=True
            )
            sys.exit(1)

    return wrapper
