"""``safepassage docs asyncapi``: documents generated from the code."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from connectors.cli.common import console
from streams.asyncapi import DOCUMENT, render

__all__ = ["docs"]


@click.group("docs")
def docs() -> None:
    """Documents generated from the code."""


@docs.command("asyncapi")
@click.option("--check", is_flag=True, help="Exit 1 if docs/asyncapi.yaml is out of date.")
@click.option("--output", type=click.Path(path_type=Path), default=DOCUMENT, show_default=True)
def docs_asyncapi(check: bool, output: Path) -> None:
    """Write the AsyncAPI 3.0 document of topics, messages and headers."""
    text = render()
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            console(stderr=True).print(
                f"[bold red]error:[/] {output} is out of date: run `safepassage docs asyncapi`."
            )
            sys.exit(1)
        console().print(f"{output} is up to date")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    console().print(f"wrote {output}")
