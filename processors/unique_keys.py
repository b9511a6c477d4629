"""YAML and JSON where a key given twice is an error, and YAML errors that quote nothing.

PyYAML and ``json`` keep the last of two equal keys silently: a provider
listed twice in the webhooks file, an urgency twice in the SLA policy, or a
member twice in an event sent to the intake would win or lose without a
word. PyYAML's error messages quote the lines around the problem, and the
webhooks file holds signing secrets, so :func:`yaml_problem` keeps the
problem and its position only.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["load_unique", "unique_pairs", "yaml_problem"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings refuse repeated keys."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def load_unique(text: str) -> object:
    """The YAML document in ``text``; :class:`yaml.YAMLError` if it is not one, or repeats a key."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json`` object hook refusing a repeated member (named by 64 characters at most)."""
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"member {name[:64]!r} appears more than once")
        result[name] = value
    return result


def yaml_problem(error: yaml.YAMLError) -> str:
    """What PyYAML found wrong and where, on one line, without the excerpt of the file it quotes."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        if mark is not None:
            return f"{error.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(error).split())  # e.g. a character YAML does not accept, and where
