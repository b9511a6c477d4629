"""The operator console: a browser view of what operators act on, served by the platform.

Operators sign in with their API key (role ``operator``, the intake's keys
file) and get a server-side session; the key never reaches a cookie or a
URL. The console shows, with pseudonymous ids, statuses and counts only:

- the live escalation feed (server-sent events from ``escalations.v1``),
  filtered by level, category and jurisdiction;
- a survivor's status, looked up through the intake's audited status route
  with the operator's own key;
- the referral funnel (from ``case-status.v1``) and SLA breaches (from
  ``escalations.v1``) per category and jurisdiction, as Plotly charts;
- the provider directory with live capacity (``providers.v1`` and
  ``capacity-ledger.v1``).

Modules: :mod:`~connectors.console.settings`, :mod:`~connectors.console.app`
(routes, pages, security headers), :mod:`~connectors.console.sessions`,
:mod:`~connectors.console.escalation_feed`, :mod:`~connectors.console.funnel`,
:mod:`~connectors.console.directory`, :mod:`~connectors.console.intake_client`,
:mod:`~connectors.console.cli`. docs/console.md is the guide.
"""

from __future__ import annotations

from connectors.console.app import create_app
from connectors.console.cli import register, serve
from connectors.console.settings import ConsoleSettings

__all__ = ["ConsoleSettings", "create_app", "register", "serve"]
