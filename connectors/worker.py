"""The router worker's composition root: settings, key store, authorizer, Faust worker.

The router (:mod:`processors.router`) knows no API keys and no roles;
this module, an edge, builds them from :mod:`connectors.auth` and hands the
router an :data:`~processors.router.ports.Authorizer`, so ``processors``
never imports ``connectors``. ``safepassage worker`` and ``safepassage
run`` call :func:`run_worker`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from connectors.auth import ApiKeyStore, authorize_status_read
from connectors.exceptions import ConnectorsError, ForbiddenError
from processors.router.ports import AccessDeniedError, Authorizer, Caller, UnauthenticatedError
from streams.logs import get_logger
from streams.settings import KafkaSettings, Profile

__all__ = ["KEYS_FILE_ENV", "MissingKeysError", "operator_authorizer", "run_worker", "status_keys"]

KEYS_FILE_ENV = "SAFEPASSAGE_API_KEYS_FILE"

_log = get_logger(__name__)


class MissingKeysError(ConnectorsError):
    """The production profile was asked to serve status without API keys."""


def _log_warning(message: str) -> None:
    _log.warning("worker.status_page_open", detail=message)


def status_keys(
    settings: KafkaSettings, warn: Callable[[str], None] = _log_warning
) -> ApiKeyStore | None:
    """The API keys the worker's status page accepts (operators).

    ``SAFEPASSAGE_API_KEYS_FILE`` unset: the page stays open on the dev
    profile (``warn`` tells the operator) and the production profile
    refuses to start.
    """
    path = os.environ.get(KEYS_FILE_ENV)
    if path:
        return ApiKeyStore(Path(path))
    if settings.profile is Profile.PRODUCTION:
        raise MissingKeysError(
            f"{KEYS_FILE_ENV} is not set: the production profile never serves "
            "survivor status without authentication (create keys with `safepassage keys add`)"
        )
    warn(f"{KEYS_FILE_ENV} is not set: the status page is open (dev profile only)")
    return None


def operator_authorizer(keys: ApiKeyStore) -> Authorizer:
    """Admit a bearer key of an operator; anything else is unauthenticated or forbidden.

    The store re-reads its file when it changes, so a revoked key stops
    working without a restart.
    """

    def authorize(authorization: str | None) -> Caller:
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise UnauthenticatedError(invalid_key=False)
        principal = keys.authenticate(key)
        if principal is None:
            raise UnauthenticatedError(invalid_key=True)
        try:
            authorize_status_read(principal)
        except ForbiddenError as exc:
            raise AccessDeniedError(str(exc)) from None
        return Caller(principal=principal.name, role=principal.role.value, key_id=principal.key_id)

    return authorize


def run_worker(
    app_id: str | None,
    web_port: int,
    data_dir: Path,
    *,
    warn: Callable[[str], None] = _log_warning,
) -> None:
    """Run the router's Faust worker in the foreground until Ctrl-C.

    ``warn`` shows the operator a warning before the worker's own logging
    takes over (the command line prints it on the console).
    """
    # Imported here: Faust and the router are heavy, and most commands need neither.
    import faust  # noqa: PLC0415

    from processors.router import build_router, declare_changelogs  # noqa: PLC0415
    from processors.settings import RouterSettings  # noqa: PLC0415
    from streams.logs import dict_config  # noqa: PLC0415

    settings = KafkaSettings()
    keys = status_keys(settings, warn)
    router = build_router(
        settings,
        policy=RouterSettings().to_policy(),
        app_id=app_id,
        data_dir=data_dir,
        web_port=web_port,
        authorizer=None if keys is None else operator_authorizer(keys),
    )
    declare_changelogs(router.tables, settings)
    worker = faust.Worker(
        router.app,
        loglevel=settings.log_level.lower(),
        logging_config=dict_config(settings.log_format, settings.log_level),
    )
    worker.execute_from_commandline()
