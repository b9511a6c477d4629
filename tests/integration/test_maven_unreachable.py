"""A real Maven run that cannot reach its repository fails with one clear paragraph."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import DependencyResolutionError
from infra.maven import resolve_classpath

pytestmark = pytest.mark.integration

SETTINGS_XML = """<settings>
  <mirrors>
    <mirror>
      <id>nowhere</id>
      <mirrorOf>*</mirrorOf>
      <url>http://127.0.0.1:9/maven2</url>
    </mirror>
  </mirrors>
</settings>
"""


def test_unreachable_repository_is_one_paragraph_naming_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".m2").mkdir(parents=True)
    (home / ".m2" / "settings.xml").write_text(SETTINGS_XML)
    # An empty local repository and every download sent to a closed port.
    monkeypatch.setenv(
        "MAVEN_OPTS", f"-Duser.home={home} -Dmaven.repo.local={tmp_path / 'empty-repo'}"
    )

    with pytest.raises(DependencyResolutionError) as caught:
        resolve_classpath(tmp_path / "state")

    message = str(caught.value)
    assert message.startswith("Could not fetch the Apache Kafka broker jars: Maven Central")
    assert "\n" not in message
    assert "Traceback" not in message
    assert not list((tmp_path / "state").glob("classpath-*.txt"))
