"""Benchmark: what sealing adds to an event's path, as a ratio to the unsealed path.

Run ``make bench-sealing`` or ``python -m tests.bench.bench_sealing``
(``--help`` for options). Not a test: figures depend on the machine; the
ratios, measured side by side in the same run, are what to read.

Per ``survivor.identified`` with ``size`` bytes of personal data, the
median over ``rounds`` interleaved rounds of ``events`` events each of:

* **unsealed path**: what every event costs anyway: build the model, encode
  it for ``intake.v1`` (Avro, CloudEvents headers) and decode it again (the
  intake's check and the router's read). The personal data is put in the
  record as opaque bytes, as if sealing cost nothing.
* **seal** (the SDK, at the edge): AES-256-GCM under the survivor's data key
  with the field's associated data.
* **open** (the intake's and the relay's check): the same, backwards.
* **unwrap** (the key directory, on each check): the data key from its
  wrapped record with the file keystore's KEK.
* **hpke seal** / **hpke open** (a disclosure): the intake seals what a
  provider may know to the provider's X25519 key, the provider opens it;
  once per provider and referral, not per event.

It prints each per-event cost in microseconds and its ratio to the
unsealed path; the closing note of issue 13 quotes them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from schemas.models import SurvivorIdentified
from schemas.types import AgeGroup, Gender, SealAlgorithm, Sealed
from streams.codec import Codec
from streams.data_keys import DataKeys
from streams.keystore import FileKeystore
from streams.provider_sealing import (
    DisclosureContext,
    ProviderKey,
    public_key_from_b64,
    seal_disclosure,
)
from streams.sealing import SealContext, open_sealed, seal
from streams.settings import KafkaSettings
from streams.topics import Topics

__all__ = ["main"]

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _event(survivor: uuid.UUID, personal_data: Sealed) -> SurvivorIdentified:
    return SurvivorIdentified(
        survivor_id=survivor,
        occurred_at=NOW,
        agency_id="agency-bench",
        jurisdiction="NL",
        age_group=AgeGroup.ADULT,
        languages=("ro", "en"),
        gender=Gender.FEMALE,
        personal_data=personal_data,
    )


def _per_event_us(run: Callable[[], object], events: int) -> float:
    started = time.perf_counter()
    for _ in range(events):
        run()
    return (time.perf_counter() - started) / events * 1e6


def measure(events: int, rounds: int, size: int, folder: Path) -> dict[str, float]:
    """Median per-event microseconds of each step (see the module)."""
    settings = KafkaSettings(topic_namespace="bench")
    topic = Topics.of(settings).intake
    codec = Codec(settings, source="/agencies/agency-bench")
    keys = DataKeys(FileKeystore(folder / "keystore"))
    survivor = uuid.uuid4()
    key, record = keys.generate(survivor, "agency-bench", NOW)
    keys.apply(survivor, record.to_bytes())
    context = SealContext(survivor, "survivor.identified", "personal_data", "platform")
    plaintext = os.urandom(size)
    opaque = Sealed(
        ciphertext=plaintext,
        key_id=key.key_id,
        algorithm=SealAlgorithm.AES_256_GCM,
        recipient="platform",
    )
    sealed = seal(key, plaintext, context)

    def unsealed() -> None:
        encoded = codec.encode(_event(survivor, opaque), topic, event_id=str(uuid.uuid4()))
        codec.decode(encoded.value, encoded.headers, topic=topic, key=encoded.key)

    provider = ProviderKey.generate()
    public = public_key_from_b64(provider.public_b64())
    disclosure = DisclosureContext(survivor, uuid.uuid4(), uuid.uuid4())
    to_provider = seal_disclosure(public, plaintext, disclosure)
    steps: dict[str, Callable[[], object]] = {
        "unsealed path": unsealed,
        "seal": lambda: seal(key, plaintext, context),
        "open": lambda: open_sealed(key, sealed, context),
        "unwrap": lambda: keys.key(survivor, key.key_id),
        "hpke seal": lambda: seal_disclosure(public, plaintext, disclosure),
        "hpke open": lambda: provider.open(to_provider, disclosure),
    }
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):  # interleaved, so a slow moment of the machine hits every step
        for name, step in steps.items():
            samples[name].append(_per_event_us(step, events))
    return {name: statistics.median(values) for name, values in samples.items()}


def report(results: dict[str, float], size: int) -> str:
    base = results["unsealed path"]
    sealed_path = base + results["seal"] + results["open"] + results["unwrap"]
    lines = [f"survivor.identified with {size} bytes of personal data, per event (median):"]
    for name, value in results.items():
        lines.append(
            f"  {name:<14} {value:9.1f} us   ratio to the unsealed path {value / base:5.3f}"
        )
    lines.append(
        f"  {'sealed path':<14} {sealed_path:9.1f} us   ratio to the unsealed path "
        f"{sealed_path / base:5.3f} (unsealed + seal + open + unwrap)"
    )
    disclosure = results["unwrap"] + results["open"] + results["hpke seal"] + results["hpke open"]
    lines.append(
        f"  {'disclosure':<14} {disclosure:9.1f} us   ratio to the unsealed path "
        f"{disclosure / base:5.3f} (unwrap + open + HPKE seal to the provider + its open; "
        "once per provider and referral, not per event)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_sealing")
    parser.add_argument("--events", type=int, default=2000, help="events per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--size", type=int, default=512, help="bytes of personal data")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sealing-") as folder:
        results = measure(args.events, args.rounds, args.size, Path(folder))
    print(report(results, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
