"""Hypothesis strategies for the event models, derived from their type hints.

Deriving the strategies from the models (instead of writing one per event)
means a field added to a model is exercised by the round-trip properties
without anyone remembering to extend a test.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import Annotated, Any, get_args, get_origin, get_type_hints
from uuid import UUID

import annotated_types
import pytest
from hypothesis import strategies as st
from pydantic import BaseModel, StringConstraints, ValidationError

from schemas.models import Event

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)
# Far enough from year 1 and 9999 that converting to UTC cannot overflow.
AWARE_DATETIMES = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=ZONES
)


def _no_surrogates(text: str) -> bool:
    return all(not 0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def _constrained(base: Any, meta: list[Any]) -> st.SearchStrategy[Any]:
    if base is datetime:
        return AWARE_DATETIMES
    low: Any = None
    high: Any = None
    for item in meta:
        if isinstance(item, StringConstraints) and item.pattern is not None:
            return st.from_regex(item.pattern, fullmatch=True).filter(_no_surrogates)
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        if isinstance(item, annotated_types.Le):
            high = item.le
    if base is int:
        return st.integers(min_value=low, max_value=high)
    if base is float:
        return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
    return strategy_for(base)


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for one annotation of the event models."""
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        return _constrained(base, meta)
    if origin in (typing.Union, types.UnionType):
        options = [strategy_for(arg) for arg in get_args(tp) if arg is not type(None)]
        return st.none() | st.one_of(*options)
    if origin is tuple:
        item, _ellipsis = get_args(tp)
        return st.lists(strategy_for(item), max_size=3).map(tuple)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return model_strategy(tp)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return st.sampled_from(list(tp))
    simple: dict[Any, st.SearchStrategy[Any]] = {
        UUID: st.uuids(),
        bool: st.booleans(),
        bytes: st.binary(max_size=48),
        datetime: AWARE_DATETIMES,
    }
    if tp in simple:
        return simple[tp]
    raise TypeError(f"no strategy for {tp!r}: extend tests/unit/conftest.py")


def _build(model: type[BaseModel], values: dict[str, Any]) -> BaseModel | None:
    try:
        return model.model_validate(values)
    except ValidationError:  # a cross-field rule (age band vs group, available <= total)
        return None


@functools.cache
def model_strategy(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    """Valid instances of a model; cross-field rules are met by filtering.

    Cached: hypothesis validates a strategy on first use, and building one
    per example would spend most of the test time doing so.
    """
    hints = get_type_hints(model, include_extras=True)
    fields = {name: strategy_for(hints[name]) for name in model.model_fields}
    return (
        st.fixed_dictionaries(fields)
        .map(lambda values: _build(model, values))
        .filter(lambda built: built is not None)
    )


@pytest.fixture(scope="session")
def events() -> Callable[[type[Event]], st.SearchStrategy[Any]]:
    """``events(Model)``: a strategy for valid instances of an event model."""
    return model_strategy
