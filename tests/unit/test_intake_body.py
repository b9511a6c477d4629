"""The intake's one JSON reader, and problem documents that always encode."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.intake.body import parse_json
from connectors.intake.problems import ProblemError
from streams.problems import FieldError, Problem


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (b'"\\ud800"', ""),
        (b'{"a": ["ok", "x\\udfff"]}', "/a/1"),
        (b'{"a/b": {"c~d": "\\ud834"}}', "/a~1b/c~0d"),
        (b'{"\\ud800": 1}', "/"),
    ],
)
def test_a_lone_surrogate_is_refused_at_its_json_pointer(body: bytes, pointer: str) -> None:
    with pytest.raises(ProblemError) as refused:
        parse_json(body)
    problem = refused.value.problem
    assert (problem.status, problem.slug) == (400, "malformed-request")
    assert [e.location for e in problem.errors] == [pointer]


def test_a_surrogate_pair_is_one_character_and_fine() -> None:
    assert parse_json(b'{"clef": "\\ud834\\udd1e"}') == {"clef": "\U0001d11e"}


@given(st.recursive(st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_what_parses_encodes_as_utf8(value: object) -> None:
    body = json.dumps(value).encode()  # ensure_ascii: lone surrogates travel as escapes
    try:
        parsed = parse_json(body)
    except ProblemError:
        return
    json.dumps(parsed, ensure_ascii=False).encode("utf-8")  # never a UnicodeEncodeError


def test_a_problem_naming_undecodable_text_still_renders_as_ascii_json() -> None:
    problem = Problem(
        400, "invalid-hsds", "Invalid", "entry 1 (\ud800)", (FieldError("/x", "\ud800"),)
    )
    body = bytes(ProblemError(problem).response().body)
    assert body.isascii()
    assert json.loads(body)["detail"] == "entry 1 (\ud800)"
