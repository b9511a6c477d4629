"""A real Maven run that cannot reach its repository fails with one clear paragraph."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import DependencyResolutionError
from infra.maven import resolve_classpath

pytestmark = pytest.mark.integration


def test_unreachable_repository_is_one_paragraph_naming_the_cause(
    tmp_path: Path, unreachable_maven: None
) -> None:

    with pytest.raises(DependencyResolutionError) as caught:
        resolve_classpath(tmp_path / "state")

    message = str(caught.value)
    assert message.startswith("Could not fetch the Apache Kafka broker jars: Maven Central")
    assert "\n" not in message
    assert "Traceback" not in message
    assert not list((tmp_path / "state").glob("classpath-*.txt"))
