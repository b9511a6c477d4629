"""The router's status page without a Faust worker: admission, ids, audit records, problems.

The page itself only wires these functions to Faust's web server (the
integration test in tests/integration/test_router.py reads it over HTTP);
here each decision is checked on its own, with authorizers written inline.
"""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.intake.problems import PROBLEM_MEDIA_TYPE as INTAKE_MEDIA_TYPE
from connectors.intake.problems import ProblemError
from processors.router.ports import AccessDeniedError, Caller, UnauthenticatedError
from processors.router.status_page import (
    NOT_READY,
    admit,
    caller_of,
    parse_survivor,
    status_read,
)
from streams.problems import (
    PROBLEM_MEDIA_TYPE,
    PROBLEM_TYPE_BASE,
    FieldError,
    Problem,
    forbidden,
    unknown_survivor,
)
from tests.unit.domain_builders import uid

OPERATOR = Caller(principal="ops-desk", role="operator", key_id="sp_operator_AbCdEfGh")
SID = uid("status-page-survivor")


def admits(header: str | None) -> Caller:
    if header is None:
        raise UnauthenticatedError(invalid_key=False)
    if header == "Bearer wrong":
        raise UnauthenticatedError(invalid_key=True)
    if header == "Bearer agency":
        raise AccessDeniedError("only operators read survivor status")
    return OPERATOR


def test_without_an_authorizer_the_page_is_open_and_reads_are_anonymous() -> None:
    assert admit(None, None) is None
    assert caller_of(None, "Bearer anything") is None


def test_no_key_is_401_with_a_bearer_challenge() -> None:
    problem = admit(admits, None)
    assert problem is not None
    assert (problem.status, problem.type) == (401, "urn:safepassage:problem:unauthenticated")
    assert problem.title == "Authentication required"
    assert problem.headers == {"WWW-Authenticate": 'Bearer realm="safepassage"'}


def test_an_unknown_key_is_401_invalid_token() -> None:
    problem = admit(admits, "Bearer wrong")
    assert problem is not None and problem.status == 401
    assert problem.title == "Invalid API key"
    assert problem.headers["WWW-Authenticate"].endswith('error="invalid_token"')


def test_another_role_is_403_naming_the_rule() -> None:
    problem = admit(admits, "Bearer agency")
    assert problem == forbidden("only operators read survivor status")
    assert problem.type == "urn:safepassage:problem:forbidden"


def test_an_operator_is_admitted_and_audited_by_name_and_key_id() -> None:
    assert admit(admits, "Bearer operator") is None
    assert caller_of(admits, "Bearer operator") == OPERATOR
    assert caller_of(admits, "Bearer wrong") is None  # keys changed between check and audit


def test_a_survivor_id_must_be_a_uuid_and_is_not_quoted_back() -> None:
    assert parse_survivor(str(SID)) == SID
    problem = parse_survivor("robert-smith")
    assert isinstance(problem, Problem)
    body = problem.body("/v1/survivors/x/status")
    assert body["type"] == "urn:safepassage:problem:invalid-request"
    assert body["errors"] == [{"location": "path:survivor_id", "message": "must be a UUID"}]
    assert "robert-smith" not in str(body)


def test_the_audit_record_names_the_caller_and_the_answer_never_the_case() -> None:
    at = datetime(2025, 3, 1, tzinfo=UTC)
    record = status_read(SID, OPERATOR, 404, at).to_dict()
    assert record == {
        "kind": "status.read",
        "survivor_id": str(SID),
        "at": "2025-03-01T00:00:00Z",
        "principal": "ops-desk",
        "role": "operator",
        "key_id": "sp_operator_AbCdEfGh",
        "status": 404,
    }
    anonymous = status_read(SID, None, 200, at).to_dict()
    assert (anonymous["principal"], anonymous["role"], anonymous["key_id"]) == (None, None, None)


def test_router_problems_are_documents_of_the_intakes_dialect() -> None:
    """Same type base, media type and members as the intake's own (the intake passes them on)."""
    intake = ProblemError(403, "forbidden", "Not allowed for this principal", "no").body("/p")
    ours = forbidden("no").body("/p")
    assert ours == intake
    assert PROBLEM_MEDIA_TYPE == INTAKE_MEDIA_TYPE == "application/problem+json"
    assert unknown_survivor().body() == {
        "type": PROBLEM_TYPE_BASE + "unknown-survivor",
        "title": "Unknown survivor",
        "status": 404,
        "detail": "no case for this survivor id",
    }
    assert NOT_READY.status == 503 and NOT_READY.headers == {"Retry-After": "2"}
    assert NOT_READY.type == "urn:safepassage:problem:router-unavailable"


def test_a_problem_carries_its_errors_and_extension_members() -> None:
    problem = Problem(400, "x", "X", "d", errors=(FieldError("/a", "m"),), extra={"n": 1})
    assert problem.body() == {
        "type": "urn:safepassage:problem:x",
        "title": "X",
        "status": 400,
        "detail": "d",
        "errors": [{"location": "/a", "message": "m"}],
        "n": 1,
    }
