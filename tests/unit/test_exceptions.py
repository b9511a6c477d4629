"""One root for every error SafePassage raises on purpose."""

from __future__ import annotations

import pytest

from connectors.exceptions import ConnectorsError, WebhookDeliveryError, WebhookError
from infra.exceptions import InfraError
from processors.exceptions import ProcessorsError, SlaPolicyError
from schemas.exceptions import SafePassageError, SchemasError
from streams.exceptions import StreamsError


@pytest.mark.parametrize(
    "root", [SchemasError, StreamsError, ProcessorsError, ConnectorsError, InfraError]
)
def test_the_five_package_roots_derive_from_one_root(root: type[Exception]) -> None:
    assert issubclass(root, SafePassageError)


def test_webhook_delivery_errors_belong_to_the_connectors_only() -> None:
    assert WebhookDeliveryError.__mro__[1:3] == (WebhookError, ConnectorsError)
    assert not issubclass(WebhookDeliveryError, StreamsError)


def test_one_line_folds_every_line_break_and_run_of_spaces() -> None:
    error = SafePassageError("invalid thing:\n  first problem\n\tsecond  problem\n")
    assert error.one_line() == "invalid thing: first problem second problem"
    assert SafePassageError().one_line() == "SafePassageError"  # never an empty message


def test_an_sla_policy_error_is_one_line_listing_every_problem() -> None:
    error = SlaPolicyError("conf/sla.yaml", ("acknowledge.emergency: must be positive", "a:\n b"))
    assert str(error) == (
        "invalid SLA policy conf/sla.yaml: acknowledge.emergency: must be positive; a: b"
    )
    assert error.problems == ("acknowledge.emergency: must be positive", "a:\n b")
