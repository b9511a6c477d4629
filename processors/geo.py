"""Jurisdiction arithmetic on ISO 3166 codes: countries and their subdivisions.

Codes are ``CC`` (ISO 3166-1 alpha-2) or ``CC-SUB`` (ISO 3166-2). A country
contains its subdivisions; two different subdivisions do not overlap. These
three small rules decide where a provider may serve, where consent allows
data to go, and what counts as cross-border (a different *country*).
"""

from __future__ import annotations

__all__ = ["country_of", "is_country", "narrower", "overlaps", "within"]


def country_of(jurisdiction: str) -> str:
    """The ISO 3166-1 country of a code (``DE`` for ``DE-BE``)."""
    return jurisdiction.split("-", 1)[0]


def is_country(jurisdiction: str) -> bool:
    """Whether the code names a whole country rather than a subdivision."""
    return "-" not in jurisdiction


def within(inner: str, outer: str) -> bool:
    """Whether every place of ``inner`` lies in ``outer`` (``DE-BE`` within ``DE``)."""
    return inner == outer or (is_country(outer) and country_of(inner) == outer)


def overlaps(a: str, b: str) -> bool:
    """Whether the two jurisdictions share any place."""
    return within(a, b) or within(b, a)


def narrower(a: str, b: str) -> str:
    """The smaller of two overlapping jurisdictions (``DE-BE`` of ``DE`` and ``DE-BE``)."""
    return a if within(a, b) else b
