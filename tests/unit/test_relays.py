"""The relays' decisions without a broker: which topic a record goes to, or why it is dead-lettered.

The inbound relay holds a record on a party's own topic to the intake API's
rules for that party; the topic names the sender, so a record cannot claim
another sender. The run loops themselves run on the broker
(``tests/integration/test_sdks.py``, ``test_security.py``).
"""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from confluent_kafka import Message

from connectors.auth import Role
from connectors.exceptions import ForbiddenError
from connectors.inbound_relay import InboundRelay, party_principal
from connectors.intake.keys import KeyDirectory
from connectors.relay import copy_of
from schemas.models import Event
from schemas.personal import PersonalData
from schemas.types import Sealed
from streams.codec import Codec
from streams.data_keys import DataKeys
from streams.deadletter import DeadLetter
from streams.exceptions import UnknownTopicError
from streams.keystore import MemoryKeystore
from streams.offsets import Partition
from streams.producing import OutRecord
from streams.sealing import DataKey, SealContext, seal
from streams.settings import KafkaSettings
from streams.topics import Topics
from tests.unit.domain_builders import T0, accepted, closed, identified, uid

SETTINGS = KafkaSettings(topic_namespace="unit")
TOPICS = Topics.of(SETTINGS)
SID, RID = uid("relay-survivor"), uid("relay-referral")
PROVIDER, OTHER = uid("relay-provider"), uid("relay-other")
NORTH = "/agencies/north"


def north_closed() -> Event:
    return closed(SID).model_copy(update={"agency_id": "north"})


def record(event: Event, *, source: str, topic: str, offset: int = 3) -> Message:
    """The record a party's Kafka SDK writes on ``topic`` (encoded for it when it can be)."""
    encoded = Codec(SETTINGS, source=source).encode(
        event, TOPICS.inbound(event.event_type), event_id=str(uid(f"e-{offset}"))
    )
    return Message(
        topic=topic,
        partition=0,
        offset=offset,
        key=encoded.key,
        value=encoded.value,
        headers=list(encoded.headers),
    )


def route(message: Message) -> OutRecord:
    relay = InboundRelay(SETTINGS)
    where = Partition(message.topic() or "", message.partition() or 0)
    return asyncio.run(relay.route(message, where, message.offset() or 0))


def reason(out: OutRecord) -> dict[str, str]:
    assert out.topic == TOPICS.deadletter
    headers = [(name, v.encode() if isinstance(v, str) else v) for name, v in out.headers]
    return DeadLetter(out.key, out.value, headers).reason()


def test_a_partys_topic_names_it_and_only_topic_safe_ids_have_one() -> None:
    assert TOPICS.from_party(NORTH) == "unit.from.agencies.north.v1"
    assert TOPICS.from_party(f"/providers/{PROVIDER}") == f"unit.from.providers.{PROVIDER}.v1"
    assert TOPICS.party_of("unit.from.agencies.north.v1") == NORTH
    for source in ("/agencies/a.b", "/agencies/a:b", "/operators/x", "/agencies", "agencies/x"):
        with pytest.raises(UnknownTopicError):
            TOPICS.from_party(source)
    for topic in ("unit.from.agencies.a.b.v1", "unit.from.others.x.v1", "unit.intake.v1"):
        assert TOPICS.party_of(topic) is None


def test_the_topic_decides_the_principal_a_record_is_held_to() -> None:
    agency = party_principal(NORTH)
    assert (agency.role, agency.agency_id, agency.source_root) == (Role.AGENCY, "north", NORTH)
    provider = party_principal(f"/providers/{PROVIDER}")
    assert (provider.role, provider.provider_id) == (Role.PROVIDER, PROVIDER)
    with pytest.raises(ForbiddenError):
        party_principal("/providers/not-a-uuid")


def test_a_partys_own_record_is_copied_byte_for_byte_onto_its_inbound_topic() -> None:
    own = record(north_closed(), source=NORTH, topic=TOPICS.from_party(NORTH))
    assert route(own) == copy_of(own, TOPICS.intake)
    answer = accepted(SID, RID, PROVIDER, 1)
    mine = f"/providers/{PROVIDER}"
    answered = record(answer, source=mine, topic=TOPICS.from_party(mine))
    assert route(answered) == copy_of(answered, TOPICS.provider_responses)


def test_only_checked_headers_reach_the_inbound_topic_and_a_traceparent_only_when_valid() -> None:
    """A header a party wrote is text nobody checked: it must not ride onto intake unsealed."""
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    own = record(north_closed(), source=NORTH, topic=TOPICS.from_party(NORTH))
    headers = own.headers()
    assert isinstance(headers, list)
    ce_headers: list[tuple[str, str | bytes | None]] = list(headers)
    extra: list[tuple[str, str | bytes | None]] = [
        ("x-survivor-name", b"Maria"),
        ("traceparent", trace.encode()),
    ]
    with_extras = Message(
        topic=own.topic(),
        partition=0,
        offset=3,
        key=own.key(),
        value=own.value(),
        headers=ce_headers + extra,
    )
    out = route(with_extras)
    assert out.topic == TOPICS.intake and out.value == own.value()
    assert list(out.headers) == [*ce_headers, ("traceparent", trace.encode())]

    forged = Message(
        topic=own.topic(),
        partition=0,
        offset=3,
        key=own.key(),
        value=own.value(),
        headers=[*ce_headers, ("traceparent", b"Maria lives at 12 Elm St")],
    )
    assert list(route(forged).headers) == ce_headers


@pytest.mark.parametrize(
    ("event", "source", "topic", "why"),
    [
        # Another agency's source on north's topic: north posing as south.
        (north_closed(), "/agencies/south", "unit.from.agencies.north.v1", "publishes under"),
        # North's source, but the event names another agency.
        (closed(SID), NORTH, "unit.from.agencies.north.v1", "own agency_id"),
        # A provider answering for another provider.
        (
            accepted(SID, RID, OTHER, 1),
            f"/providers/{PROVIDER}",
            f"unit.from.providers.{PROVIDER}.v1",
            "own provider_id",
        ),
        # An answer on an agency's topic breaks the topic's contract.
        (accepted(SID, RID, PROVIDER, 1), NORTH, "unit.from.agencies.north.v1", "not allowed"),
        # Under the prefix, but no party's topic.
        (north_closed(), NORTH, "unit.from.operators.x.v1", "no party's topic"),
        (
            accepted(SID, RID, PROVIDER, 1),
            "/providers/p-1",
            "unit.from.providers.p-1.v1",
            "no provider id",
        ),
    ],
)
def test_a_record_that_breaks_the_intakes_rules_is_dead_lettered_with_the_reason(
    event: Event, source: str, topic: str, why: str
) -> None:
    out = route(record(event, source=source, topic=topic))
    headers = reason(out)
    assert why in headers["deadletter.error.message"]
    assert headers["deadletter.source.topic"] == topic
    assert headers["deadletter.source.offset"] == "3"


def test_garbage_on_a_partys_topic_is_dead_lettered_not_relayed() -> None:
    garbage = Message(topic="unit.from.agencies.north.v1", partition=0, offset=3, value=b"junk")
    assert reason(route(garbage))["deadletter.error.class"] == "MissingHeader"  # a DecodeError


def test_relayed_ids_keep_their_uuid_form() -> None:
    """The provider's topic id is the canonical UUID text the SDK writes."""
    assert TOPICS.from_party(f"/providers/{PROVIDER}").split(".")[3] == str(UUID(str(PROVIDER)))


def _identified_by_north(personal_data: Sealed) -> Event:
    return identified(SID).model_copy(update={"agency_id": "north", "personal_data": personal_data})


def _directory_with_key() -> tuple[KeyDirectory, DataKey]:
    """A caught-up key directory that holds SID's data key."""
    keys = DataKeys(MemoryKeystore())
    key, made = keys.generate(SID, "north", T0)
    keys.apply(SID, made.to_bytes())
    directory = KeyDirectory(SETTINGS, MemoryKeystore())
    directory.served, directory._ready = keys, True
    return directory, key


def test_a_sealed_value_must_open_for_the_platform_or_the_record_is_dead_lettered() -> None:
    directory, key = _directory_with_key()
    relay = InboundRelay(SETTINGS, directory=directory)
    topic = TOPICS.from_party(NORTH)

    def routed(event: Event) -> OutRecord:
        message = record(event, source=NORTH, topic=topic)
        return asyncio.run(relay.route(message, Partition(topic, 0), 3))

    context = SealContext(SID, "survivor.identified", "personal_data", "platform")
    sealed = seal(key, PersonalData.of({"location": "Hotel Astoria, room 12"}).to_bytes(), context)
    good = record(_identified_by_north(sealed), source=NORTH, topic=topic)
    assert asyncio.run(relay.route(good, Partition(topic, 0), 3)) == copy_of(good, TOPICS.intake)

    clear = sealed.model_copy(update={"ciphertext": b"Maria Popescu, +40712345678"})
    refused = reason(routed(_identified_by_north(clear)))
    assert refused["deadletter.error.class"] == "SealedValueError"
    assert "personal_data" in refused["deadletter.error.message"]
    assert "Maria" not in str(refused)
    free_text = seal(key, b"Hotel Astoria, room 12", context)  # opens, but names no field
    unnamed = reason(routed(_identified_by_north(free_text)))
    assert unnamed["deadletter.error.class"] == "SealedValueError"
    assert "Astoria" not in str(unnamed)
    # Without a key directory, nothing sealed passes at all (the safe default).
    bare = reason(route(record(_identified_by_north(sealed), source=NORTH, topic=topic)))
    assert "no key directory" in bare["deadletter.error.message"]
