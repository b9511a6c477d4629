"""``safepassage providers add|update|list|import|export|capacity``: the directory over HTTP(S).

Talks to the intake's directory API (docs/directory.md) with a directory
administrator's key (a provider's key works for its own ``capacity``):
``SAFEPASSAGE_DIRECTORY_API_KEY`` or ``--api-key-file``, never the key itself
on the command line. ``SAFEPASSAGE_DIRECTORY_URL`` (``--url``) names the
intake, ``SAFEPASSAGE_DIRECTORY_CAFILE`` (``--cafile``) the CA of its
certificate (default: the local CA of ``make run``). A refusal is one line
on stderr (the problem document: status, title, detail, fields) and exit
code 1.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from rich.table import Table

from connectors.cli.common import console
from connectors.directory.client import (
    DirectoryClient,
    DirectoryClientSettings,
    load_directory,
)
from connectors.exceptions import DirectoryClientError

__all__ = ["providers"]

_CATEGORIES = ("housing", "health", "legal-aid", "financial-support")
_GENDERS = ("female", "male", "non-binary", "other")


def _client(ctx: click.Context) -> DirectoryClient:
    options: dict[str, Any] = ctx.obj
    try:
        settings = DirectoryClientSettings(
            **{k: v for k, v in (("url", options["url"]), ("cafile", options["cafile"])) if v}
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise DirectoryClientError(f"invalid settings: {problems}") from None
    key = None
    key_file: Path | None = options["api_key_file"]
    if key_file is not None:
        try:
            key = key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DirectoryClientError(f"cannot read {key_file} ({type(exc).__name__})") from None
    return DirectoryClient.from_settings(settings, key)


@click.group("providers")
@click.option("--url", default=None, help="The intake (default SAFEPASSAGE_DIRECTORY_URL).")
@click.option(
    "--api-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A file holding the API key (default: SAFEPASSAGE_DIRECTORY_API_KEY).",
)
@click.option(
    "--cafile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CA of the intake's certificate (default SAFEPASSAGE_DIRECTORY_CAFILE, the local CA).",
)
@click.pass_context
def providers(
    ctx: click.Context, url: str | None, api_key_file: Path | None, cafile: Path | None
) -> None:
    """The provider directory, through the intake's directory API (docs/directory.md)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    ctx.obj = {"url": url, "api_key_file": api_key_file, "cafile": cafile}


def _entry_options(func: Any) -> Any:
    """The options of an entry, shared by ``add`` and ``update`` (None: not given)."""
    for option in reversed(
        [
            click.option("--name", "organization_name", help="Public name of the organisation."),
            click.option(
                "--category",
                "categories",
                multiple=True,
                type=click.Choice(_CATEGORIES),
                help="A service category (repeat for several).",
            ),
            click.option(
                "--language", "languages", multiple=True, help="ISO 639 code, e.g. ro (repeat)."
            ),
            click.option(
                "--jurisdiction",
                "jurisdictions",
                multiple=True,
                help="ISO 3166 code where it serves, e.g. NL or NL-LI (repeat).",
            ),
            click.option("--capacity", type=click.IntRange(min=0), help="Places in total."),
            click.option(
                "--interpretation/--no-interpretation",
                "offers_interpretation",
                default=None,
                help="Arranges interpretation.",
            ),
            click.option(
                "--child-specialised/--not-child-specialised",
                "child_specialised",
                default=None,
                help="Specialised in children.",
            ),
            click.option(
                "--gender-specific",
                type=click.Choice([*_GENDERS, "none"]),
                default=None,
                help="The one gender served ('none': every gender).",
            ),
            click.option(
                "--accessible/--not-accessible", default=None, help="Accessible premises."
            ),
            click.option(
                "--cross-border/--no-cross-border",
                default=None,
                help="Accepts referrals from other countries.",
            ),
        ]
    ):
        func = option(func)
    return func


def _entry(given: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The entry the options describe, over ``base`` (the current entry on update)."""
    entry: dict[str, Any] = dict(base or {})
    for name, value in given.items():
        if value is None or value == ():
            continue
        if name == "categories":
            entry[name] = [c.upper().replace("-", "_") for c in value]
        elif name == "gender_specific":
            entry[name] = None if value == "none" else value.upper().replace("-", "_")
        elif isinstance(value, tuple):
            entry[name] = list(value)
        else:
            entry[name] = value
    return entry


_FIELDS = (
    "organization_name",
    "categories",
    "languages",
    "offers_interpretation",
    "jurisdictions",
    "child_specialised",
    "gender_specific",
    "accessible",
    "cross_border",
    "capacity",
)


@providers.command("add")
@click.option("--id", "provider_id", type=click.UUID, default=None, help="Its id (default: new).")
@_entry_options
@click.pass_context
def add(ctx: click.Context, /, provider_id: Any, **given: Any) -> None:
    """Register a provider; prints its id."""
    entry = _entry(given)
    if provider_id is not None:
        entry["provider_id"] = str(provider_id)
    answer = _client(ctx).register(entry)
    click.echo(answer["provider_id"])


@providers.command("update")
@click.argument("provider_id", type=click.UUID)
@_entry_options
@click.pass_context
def update(ctx: click.Context, /, provider_id: Any, **given: Any) -> None:
    """Change a provider's entry: the options given replace those fields, the rest stays."""
    client = _client(ctx)
    current = client.get(str(provider_id))
    base = {name: current[name] for name in _FIELDS if name in current}
    client.update(str(provider_id), _entry(given, base))
    click.echo(f"updated {provider_id}")


@providers.command("capacity")
@click.argument("provider_id", type=click.UUID)
@click.option("--category", type=click.Choice(_CATEGORIES), required=True)
@click.option("--total", type=click.IntRange(min=0), required=True, help="Places in total.")
@click.option("--available", type=click.IntRange(min=0), required=True, help="Places free now.")
@click.pass_context
def capacity(
    ctx: click.Context, provider_id: Any, category: str, total: int, available: int
) -> None:
    """Report places in one category (a provider's own key, or an administrator's)."""
    _client(ctx).capacity(str(provider_id), category.upper().replace("-", "_"), total, available)
    click.echo(f"{provider_id} {category}: {available} of {total} available")


def _name(category: str) -> str:
    """``LEGAL_AID`` as the options spell it, ``legal-aid``."""
    return category.lower().replace("_", "-")


@providers.command("list")
@click.option("--json", "as_json", is_flag=True, help="The API's JSON instead of a table.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """Every provider in the directory."""
    entries = _client(ctx).list()
    if as_json:
        click.echo(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    table = Table(
        "provider id", "organisation", "categories", "jurisdictions", "languages", "capacity"
    )
    for entry in entries:
        free = {_name(c["category"]): c["available"] for c in entry.get("capacities", [])}
        places = str(entry["capacity"]) + (
            " (" + ", ".join(f"{k} {v} free" for k, v in sorted(free.items())) + ")" if free else ""
        )
        table.add_row(
            entry["provider_id"],
            entry["organization_name"],
            " ".join(_name(c) for c in entry["categories"]),
            " ".join(entry["jurisdictions"]),
            " ".join(entry["languages"]),
            places,
        )
    console().print(table)


@providers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def import_(ctx: click.Context, file: Path) -> None:
    """Register or update every service of an HSDS 3.0 JSON file (all or nothing)."""
    report = load_directory(_client(ctx), file)
    click.echo(
        f"imported {len(report['registered']) + len(report['updated'])} providers: "
        f"{len(report['registered'])} registered, {len(report['updated'])} updated, "
        f"{report['capacity_reports']} capacity reports"
    )


@providers.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.pass_context
def export(ctx: click.Context, file: Path | None) -> None:
    """The directory as HSDS 3.0 JSON, to FILE or stdout."""
    text = json.dumps(_client(ctx).export_hsds(), indent=2, ensure_ascii=False) + "\n"
    if file is None:
        sys.stdout.write(text)
        return
    try:
        file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DirectoryClientError(f"cannot write {file} ({type(exc).__name__})") from None
    click.echo(f"wrote {file}", err=True)
