"""Faust bindings of the router: records into :mod:`processors.engine`, effects out.

A thin edge over the pure core; nothing is decided here. :mod:`.wiring`
declares the Faust app; :mod:`.binding` carries each input through the
engine and its step out, in the order that makes a replay harmless;
:mod:`.ports` names what the binding needs, as protocols; :mod:`.directory_view`
is every worker's whole copy of the provider directory; :mod:`.stores` scans
the deadlines table in order; :mod:`.changelogs` creates the tables'
changelog topics before Faust does.
"""

from __future__ import annotations

from processors.router.binding import Binding
from processors.router.changelogs import changelog_specs, declare_changelogs
from processors.router.directory_view import DirectoryView
from processors.router.wiring import SOURCE, Router, build_router

__all__ = [
    "SOURCE",
    "Binding",
    "DirectoryView",
    "Router",
    "build_router",
    "changelog_specs",
    "declare_changelogs",
]
