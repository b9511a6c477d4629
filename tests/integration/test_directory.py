"""The provider directory on the real broker: HSDS in, HSDS out, capacity, and a routed referral.

A real intake (uvicorn in a thread, :class:`tests.integration.intake.Server`)
with a directory administrator's key imports the demo directory
(``infra/demo/directory.hsds.json``) through its API, the way
:func:`connectors.directory.client.load_directory` (and ``safepassage providers
import``) does; its export must give the file back. A provider's capacity
report with its own key must reach ``providers.v1`` under its own source and be
taken by the router's own directory view; another provider's key is refused.
Last, a router worker started on the imported directory offers a referral to
the imported provider that fits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from connectors.auth import Role, add_key
from connectors.cli import main
from connectors.directory import demo
from connectors.directory.client import DirectoryClient, load_directory
from connectors.exceptions import DirectoryClientError
from connectors.intake import IntakeSettings, create_app
from processors.router import DirectoryView
from schemas.models import ProviderCapacity
from schemas.types import Gender, ServiceCategory
from streams.clients import producer_config
from streams.codec import Codec
from streams.provisioning import provision
from streams.settings import KafkaSettings
from streams.topics import Topics, referral_topic
from tests.integration.conftest import free_port
from tests.integration.intake import Server
from tests.integration.waits import read_to_end, wait_until
from tests.integration.workers import start_worker
from tests.unit.domain_builders import consent, identified, request, source_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LANTERN = next(p for p in demo.PROVIDERS if p.slug == "nl-lantern")
SAFFRON = next(p for p in demo.PROVIDERS if p.slug == "nl-saffron")


@pytest.fixture(scope="module")
def directory(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    namespace = f"directory-{uuid.uuid4().hex[:10]}"
    settings = KafkaSettings(bootstrap_servers=bootstrap, topic_namespace=namespace)
    provision(settings)
    folder = tmp_path_factory.mktemp("directory-intake")
    keys_file = folder / "api-keys.yaml"
    keys = {
        "admin": add_key(keys_file, role=Role.DIRECTORY_ADMIN, principal="dir-admin")[0],
        "lantern": add_key(
            keys_file, role=Role.PROVIDER, principal="lantern", provider_id=LANTERN.provider_id
        )[0],
        "saffron": add_key(
            keys_file, role=Role.PROVIDER, principal="saffron", provider_id=SAFFRON.provider_id
        )[0],
    }
    app = create_app(
        IntakeSettings(api_keys_file=keys_file, state_dir=folder / "state"),
        kafka=settings,
    )
    port = free_port()
    with Server(app, port):
        url = f"http://127.0.0.1:{port}"
        admin = DirectoryClient(url, keys["admin"])

        def ready() -> bool:
            try:
                admin.list()
            except DirectoryClientError as exc:
                assert exc.status == 503, exc
                return False
            return True

        wait_until(ready, "the intake's copy of providers.v1 to catch up")
        yield {"settings": settings, "url": url, "keys": keys, "admin": admin, "folder": folder}


def test_the_demo_directory_imported_exported_and_compared(directory: dict[str, Any]) -> None:
    admin: DirectoryClient = directory["admin"]

    report = load_directory(admin)  # the demo file, through the API

    assert len(report["registered"]) == len(demo.PROVIDERS)
    assert report["updated"] == []
    assert report["capacity_reports"] > len(demo.PROVIDERS)
    original = json.loads(demo.DEMO_FILE.read_text(encoding="utf-8"))
    assert admin.export_hsds() == original  # the round trip: kept fields and all
    listed = {p["provider_id"]: p for p in admin.list()}
    assert listed[str(LANTERN.provider_id)]["gender_specific"] == "FEMALE"
    # Every directory event is on providers.v1 under the administrator's source.
    settings: KafkaSettings = directory["settings"]
    codec = Codec(settings, source="/t")
    topic = Topics.of(settings).providers
    sources = {
        codec.decode(m.value(), m.headers(), topic=topic, key=m.key()).envelope.source
        for m in read_to_end(settings, topic)
    }
    assert sources == {"/directory-admins/dir-admin"}
    # A second import of the same file updates every provider to the same entry.
    again = load_directory(admin)
    assert again["registered"] == [] and len(again["updated"]) == len(demo.PROVIDERS)
    assert admin.export_hsds() == original


def test_a_providers_own_capacity_report_reaches_the_router(directory: dict[str, Any]) -> None:
    settings: KafkaSettings = directory["settings"]
    url, keys = directory["url"], directory["keys"]
    if not directory["admin"].list():
        load_directory(directory["admin"])
    lantern = DirectoryClient(url, keys["lantern"])
    pid = str(LANTERN.provider_id)

    answer = lantern.capacity(pid, "HOUSING", total=12, available=1)

    assert {"category": "HOUSING", "total": 12, "available": 1} in answer["capacities"]
    with pytest.raises(DirectoryClientError) as refused:
        DirectoryClient(url, keys["saffron"]).capacity(pid, "HOUSING", total=12, available=12)
    assert refused.value.status == 403
    topic = Topics.of(settings).providers
    codec = Codec(settings, source="/t")
    reports = [
        decoded
        for m in read_to_end(settings, topic)
        if (decoded := codec.decode(m.value(), m.headers(), topic=topic, key=m.key()))
        and isinstance(decoded.event, ProviderCapacity)
        and decoded.envelope.source == f"/providers/{pid}"
    ]
    assert [r.event.available for r in reports] == [1]  # type: ignore[attr-defined]
    audit = [
        json.loads(m.value() or b"{}") for m in read_to_end(settings, Topics.of(settings).audit)
    ]
    assert any(
        a.get("action") == "capacity" and a.get("principal") == "saffron" and a["status"] == 403
        for a in audit
    )
    # The router's own directory view takes the report (and would refuse a forged one).
    view = asyncio.run(_router_view(settings))
    entry = view.directory.get(LANTERN.provider_id)
    assert entry is not None
    assert entry.available(ServiceCategory.HOUSING) == 1


async def _router_view(settings: KafkaSettings) -> DirectoryView:
    view = DirectoryView(settings, Codec(settings, source="/safepassage/test"))
    task = asyncio.create_task(view.run())
    try:
        await asyncio.wait_for(view.ready.wait(), 60)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return view


def test_the_cli_lists_adds_and_exports(directory: dict[str, Any], tmp_path: Path) -> None:
    env = {
        "SAFEPASSAGE_DIRECTORY_URL": directory["url"],
        "SAFEPASSAGE_DIRECTORY_API_KEY": directory["keys"]["admin"],
    }
    runner = CliRunner()
    added = runner.invoke(
        main,
        [
            "providers",
            "add",
            "--name",
            "Fictional Test Shelter",
            "--category",
            "housing",
            "--language",
            "nl",
            "--jurisdiction",
            "NL-ZH",
            "--capacity",
            "3",
        ],
        env=env,
    )
    assert added.exit_code == 0, added.output
    pid = added.stdout.strip()
    updated = runner.invoke(main, ["providers", "update", pid, "--capacity", "4"], env=env)
    assert updated.exit_code == 0, updated.output
    listed = runner.invoke(main, ["providers", "list", "--json"], env=env)
    entry = next(p for p in json.loads(listed.stdout) if p["provider_id"] == pid)
    assert entry["capacity"] == 4 and entry["languages"] == ["nl"]
    out = tmp_path / "export.json"
    exported = runner.invoke(main, ["providers", "export", str(out)], env=env)
    assert exported.exit_code == 0, exported.output
    assert pid in {s["id"] for s in json.loads(out.read_text())["contents"]}
    refused = runner.invoke(main, ["providers", "import", str(tmp_path / "missing.json")], env=env)
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: cannot read")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"contents": [{"id": "x"}]}))
    refused = runner.invoke(main, ["providers", "import", str(bad)], env=env)
    assert refused.exit_code == 1
    assert "400 Invalid HSDS document" in refused.stderr
    assert "/contents/0/id" in refused.stderr


def test_a_referral_is_routed_to_an_imported_provider(directory: dict[str, Any]) -> None:
    settings: KafkaSettings = directory["settings"]
    if not directory["admin"].list():
        load_directory(directory["admin"])
    # Lantern in Noord-Holland: Romanian, women only, housing. The worker starts on the
    # imported directory, so its view has read the directory before it routes.
    worker = start_worker(settings.bootstrap_servers, settings.topic_namespace, directory["folder"])
    try:
        survivor, referral = uuid.uuid4(), uuid.uuid4()
        codec = Codec(settings, source="/safepassage/test")
        producer = Producer(producer_config(settings))
        topic = Topics.of(settings).intake
        for event in (
            identified(survivor, languages=("ro",), gender=Gender.FEMALE),
            consent(survivor),
            request(survivor, referral, languages=("ro",), jurisdiction="NL-NH"),
        ):
            record = codec.encode(event, topic, source=source_for(event))
            producer.produce(
                topic, key=record.key, value=record.value, headers=list[Any](record.headers)
            )
        assert producer.flush(30) == 0
        housing = referral_topic(settings, "housing")

        def offered() -> Any:
            for message in read_to_end(settings, housing):
                decoded = codec.decode(
                    message.value(), message.headers(), topic=housing, key=message.key()
                )
                if getattr(decoded.event, "referral_id", None) == referral:
                    return decoded.event
            return None

        offer = wait_until(offered, "an offer for the referral", on_timeout=worker.log_tail)
        assert offer.provider_id == LANTERN.provider_id
    finally:
        worker.stop()
