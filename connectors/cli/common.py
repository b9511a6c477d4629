"""What every command group of ``safepassage`` shares: the console and the one-line errors.

The promise of the command line (a :class:`~schemas.exceptions.SafePassageError`
is one line on stderr and exit code 1, never a stack trace) is kept in one
place, :class:`FriendlyGroup`, so that no new command can forget it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from schemas.exceptions import SafePassageError

__all__ = ["FriendlyGroup", "console"]


def console(*, stderr: bool = False) -> Console:
    """A console that does not squeeze tables when output goes to a file or pipe."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=250 if wide else None)


class FriendlyGroup(click.Group):
    """A group that shows every SafePassage error of its commands as one line on stderr, exit 1.

    An error class may name another exit code (``exit_code``), for callers
    that tell that case apart (``make run`` and a run already running).

    The messages carry no personal data (the root's promise), so they are
    shown as they are; folded onto one line, escaped from rich's markup and
    never wrapped, so that a script can read the line back.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the group's callback and the chosen command; a SafePassage error ends it here."""
        try:
            return super().invoke(ctx)
        except SafePassageError as exc:
            console(stderr=True).print(
                f"[bold red]error:[/] {escape(exc.one_line())}", highlight=False, soft_wrap=True
            )
            sys.exit(getattr(exc, "exit_code", 1))
