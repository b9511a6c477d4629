"""The ``safepassage`` command line: the operator's edge onto infra and streams.

This package holds the ``main`` group (the console script
``safepassage = "connectors.cli:main"``) and adds every command group to
it, one module each, and the groups the intake and the webhook connector
keep with their code (:mod:`connectors.intake.cli`,
:mod:`connectors.delivery.cli`). Every
:class:`~schemas.exceptions.SafePassageError` (the root of the errors of
every package) is one line on stderr and exit code 1, never a stack trace
(:class:`connectors.cli.common.FriendlyGroup`).
"""

from __future__ import annotations

import click

from connectors.cli import (
    acl,
    docs,
    escalations,
    kafka,
    providers,
    registry,
    run,
    schemas,
    topics,
    worker,
)
from connectors.cli.common import FriendlyGroup
from connectors.console import register as register_console
from connectors.delivery import register as register_delivery
from connectors.demo.cli import demo
from connectors.intake import register as register_intake
from connectors.private import owner_only_files
from streams.logs import configure_logging
from streams.settings import KafkaSettings, read_settings

__all__ = ["main"]


@click.group(cls=FriendlyGroup)
@click.version_option(package_name="safepassage")
def main() -> None:
    """SafePassage: referral and service coordination for survivors of trafficking."""
    owner_only_files()  # state, tables, keys and logs: the owner's alone (connectors/private.py)
    settings = read_settings(KafkaSettings)
    configure_logging(settings.log_format, settings.log_level)


for _command in (
    kafka.kafka,  # safepassage kafka start|stop|status
    registry.registry,  # safepassage registry build|start|stop|status
    topics.topics,  # safepassage topics provision|list
    acl.acl,  # safepassage acl plan|apply
    schemas.schemas,  # safepassage schemas check|release
    docs.docs,  # safepassage docs asyncapi
    escalations.escalations,  # safepassage escalations follow|tick
    worker.worker,  # safepassage worker
    run.run,  # safepassage run (make run): the platform, supervised
    providers.providers,  # safepassage providers add|update|list|import|export|capacity
    demo,  # safepassage demo providers|stream (started by safepassage run --demo)
):
    main.add_command(_command)
register_delivery(main)  # safepassage deliver webhooks|kafka|new-secret
register_intake(main)  # safepassage intake serve, safepassage keys add
register_console(main)  # safepassage console serve
