"""``safepassage run`` (``make run``): the whole platform, supervised, with one summary.

The work is :func:`connectors.platform.run.run_platform`; this module only
reads the options.
"""

from __future__ import annotations

from pathlib import Path

import click

from streams.settings import read_settings

__all__ = ["run"]


@click.command("run")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Every path of the run derives from it (default SAFEPASSAGE_RUN_STATE_DIR, .state).",
)
@click.option(
    "--demo",
    is_flag=True,
    default=False,
    help="Also run the live demo: simulated providers and a stream of fictional survivors "
    "(docs/demo.md).",
)
def run(state_dir: Path | None, demo: bool) -> None:
    """Broker, topics, ACLs, demo keys, router worker, intake, webhooks, relays; Ctrl-C stops all.

    Ports: SAFEPASSAGE_BROKER_PORT (the broker, and every client's bootstrap),
    SAFEPASSAGE_INTAKE_PORT. Logs: <state>/logs/<service>.log. See docs/running.md.
    """
    # Imported here: the platform module uses other command groups' helpers
    # (connectors.cli.acl, .kafka), which import this package first.
    from connectors.platform.run import RunSettings, run_platform  # noqa: PLC0415

    settings = read_settings(RunSettings)
    if state_dir is not None:
        settings = settings.model_copy(update={"state_dir": state_dir})
    if demo:
        settings = settings.model_copy(update={"demo": True})
    run_platform(settings)
