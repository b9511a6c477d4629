"""``safepassage acl plan|apply``: the broker's ACLs from the declarative matrix.

Run as a principal allowed to read and change ACLs (``admin``, a super
user): ``set -a; . .state/kafka/security/clients/admin.env; set +a``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from connectors.cli.common import console
from streams.acls import (
    DEFAULT_MATRIX,
    AclPlan,
    Matrix,
    apply,
    grants,
    load_matrix,
    observe,
    party_topics,
    plan,
)
from streams.provisioning import provision
from streams.settings import KafkaSettings, read_settings

__all__ = ["acl", "apply_matrix", "print_acl_plan"]

_file_option = click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=f"The ACL matrix (default: the platform's, {DEFAULT_MATRIX.name}).",
)


def print_acl_plan(the_plan: AclPlan, *, done: bool) -> None:
    """One line per binding added or removed (or to be), and per DENY binding kept."""
    add, remove = ("added", "removed") if done else ("to add", "to remove")
    for grant in the_plan.add:
        console().print(f"[green]{add}[/] {grant.describe()}", highlight=False)
    for grant in the_plan.remove:
        console().print(f"[yellow]{remove}[/] {grant.describe()}", highlight=False)
    for grant in the_plan.kept_denials:
        console().print(f"kept    {grant.describe()}", highlight=False)
    if the_plan.in_sync:
        console().print("the cluster's ACLs are those of the matrix")


def apply_matrix(settings: KafkaSettings, matrix: Matrix) -> None:
    """Apply the matrix and create each party's own inbound topic; print what changed."""
    print_acl_plan(apply(settings, matrix), done=True)
    _, created = provision(settings, party_topics(matrix, settings))
    for name in created:
        console().print(f"[green]created[/] party topic {name}", highlight=False)


@click.group("acl")
def acl() -> None:
    """The broker's ACLs: who may read, write and own which topics and groups."""


@acl.command("plan")
@_file_option
def acl_plan(path: Path | None) -> None:
    """Show what `apply` would change; exit 2 when the cluster drifts from the matrix."""
    settings = read_settings(KafkaSettings)
    the_plan = plan(grants(load_matrix(path), settings), observe(settings))
    print_acl_plan(the_plan, done=False)
    if not the_plan.in_sync:
        sys.exit(2)


@acl.command("apply")
@_file_option
def acl_apply(path: Path | None) -> None:
    """Make the cluster's ACLs those of the matrix (idempotent; revokes what it does not grant).

    Also creates each party's own inbound topic (``<ns>.from.<agencies|providers>.<id>.v1``).
    """
    apply_matrix(read_settings(KafkaSettings), load_matrix(path))
