"""The ``safepassage`` command line: the operator's edge onto infra and streams.

This package holds the ``main`` group (the console script
``safepassage = "connectors.cli:main"``) and adds every command group to it,
one module each (DESIGN.md): :mod:`~connectors.cli.kafka`,
:mod:`~connectors.cli.registry`, :mod:`~connectors.cli.topics`,
:mod:`~connectors.cli.schemas`, :mod:`~connectors.cli.docs`,
:mod:`~connectors.cli.escalations`, :mod:`~connectors.cli.worker` (``worker``
and ``run``), and the groups the intake and the webhook connector keep with
their code (:mod:`connectors.intake.cli`, :mod:`connectors.delivery.cli`).

Every :class:`~schemas.exceptions.SafePassageError` (the root of the errors
of every package) is translated into one line on stderr and exit code 1,
never a stack trace (:func:`connectors.cli.common.friendly_errors`).
"""

from __future__ import annotations

import click

from connectors.cli import docs, escalations, kafka, registry, schemas, topics, worker
from connectors.cli.common import friendly_errors
from connectors.delivery import register as register_delivery
from connectors.intake import register as register_intake
from streams.logs import configure_logging
from streams.settings import KafkaSettings, read_settings

__all__ = ["main"]


@click.group()
@click.version_option(package_name="safepassage")
@friendly_errors
def main() -> None:
    """SafePassage: referral and service coordination for survivors of trafficking."""
    settings = read_settings(KafkaSettings)
    configure_logging(settings.log_format, settings.log_level)


for _register in (
    kafka.register,  # safepassage kafka start|stop|status
    registry.register,  # safepassage registry start|stop|status
    topics.register,  # safepassage topics provision|list
    schemas.register,  # safepassage schemas check|release
    docs.register,  # safepassage docs asyncapi
    escalations.register,  # safepassage escalations follow|tick
    worker.register,  # safepassage worker, safepassage run
    register_delivery,  # safepassage deliver webhooks|new-secret
    register_intake,  # safepassage intake serve, safepassage keys add
):
    _register(main)
