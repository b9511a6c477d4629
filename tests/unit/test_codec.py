"""The codec: exact round trips in both framings, pinned bytes, headers, typed failures."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro import schemaless_writer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from schemas import AVRO_DIR
from schemas.models import (
    MODELS,
    CaseClosed,
    Event,
    ProviderCapacity,
    ReferralCancelled,
    ReferralEscalated,
    ReferralOffered,
    to_avro,
)
from schemas.registry import EventSchemas, event_schemas, parse
from schemas.types import (
    Actor,
    CancelReason,
    CaseOutcome,
    EscalationReason,
    ServiceCategory,
    Urgency,
)
from streams.cloudevents import AVRO_MEDIA_TYPE as CONTENT_TYPE
from streams.cloudevents import REQUIRED_HEADERS, rfc3339
from streams.codec import Codec, ConfluentSchemaRegistry, EncodedRecord, Framing
from streams.contract import Contract, KeyKind, provider_of
from streams.deadletter import DEADLETTER_HEADERS, deadletter_headers
from streams.exceptions import (
    DecodeError,
    EncodeError,
    InvalidEvent,
    InvalidHeader,
    KeyMismatch,
    MissingHeader,
    OversizedRecord,
    RegistryUnavailableError,
    StreamsError,
    UndecodableRecord,
    UnknownSchema,
    UnknownTopicError,
    WrongEventType,
)
from streams.settings import KafkaSettings
from streams.topics import OFFER_EVENTS, Topics, offers_spec

SETTINGS = KafkaSettings(topic_namespace="safepassage")
INTAKE = "safepassage.intake.v1"
RESPONSES = "safepassage.provider-responses.v1"
PROVIDERS = "safepassage.providers.v1"
HOUSING = "safepassage.referrals.housing.v1"
HEALTH = "safepassage.referrals.health.v1"
ESCALATIONS = "safepassage.escalations.v1"
SOURCE = "/safepassage/tests"

T0 = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
SURVIVOR = UUID("6f1c2e4a-5b3d-4c7e-9a8b-0d1e2f3a4b5c")
PROVIDER = UUID("1d2c3b4a-0000-4000-8000-00000000abcd")


# Building a schema-registry client takes tens of milliseconds: share one mock.
SHARED_REGISTRY = ConfluentSchemaRegistry.from_config({"url": "mock://tests"})
CODECS = {
    Framing.SINGLE_OBJECT: Codec(SETTINGS, source=SOURCE),
    Framing.CONFLUENT: Codec(SETTINGS, source=SOURCE, resolver=SHARED_REGISTRY),
}


def single_object_codec(**kwargs: Any) -> Codec:
    return Codec(SETTINGS, source=SOURCE, **kwargs)


def registry_codec(registry: ConfluentSchemaRegistry | None = None) -> Codec:
    return Codec(SETTINGS, source=SOURCE, resolver=registry or SHARED_REGISTRY)


def closed(**overrides: Any) -> CaseClosed:
    values: dict[str, Any] = {
        "survivor_id": SURVIVOR,
        "occurred_at": T0,
        "agency_id": "nl-police",
        "outcome": CaseOutcome.SUPPORT_COMPLETED,
    }
    return CaseClosed(**(values | overrides))


def offered(**overrides: Any) -> ReferralOffered:
    values: dict[str, Any] = {
        "survivor_id": SURVIVOR,
        "occurred_at": T0,
        "referral_id": uuid4(),
        "provider_id": PROVIDER,
        "category": ServiceCategory.HOUSING,
        "urgency": Urgency.PRIORITY,
        "score": 0.75,
        "reasons": ("language:ro", "capacity:available"),
        "attempt": 1,
        "deadline": T0,
    }
    return ReferralOffered(**(values | overrides))


def replace_header(record: EncodedRecord, name: str, value: bytes | None) -> list[Any]:
    return [(k, value if k == name else v) for k, v in record.headers]


def avro_body(event_type: str, data: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, event_schemas().current(event_type).parsed, data)
    return out.getvalue()


# ---------------------------------------------------------------------- round trips


@st.composite
def encodable(draw: st.DrawFn, events: st.SearchStrategy[Event]) -> tuple[Event, str]:
    """An event and one of the topics it may be published on."""
    event = draw(events)
    topics = CODECS[Framing.SINGLE_OBJECT].contract.topics_for(event)
    assume(topics)
    return event, draw(st.sampled_from(topics))


@pytest.mark.parametrize("framing", list(Framing))
@pytest.mark.parametrize("model", list(MODELS.values()), ids=list(MODELS))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_decode_inverts_encode(
    model: type[Event],
    framing: Framing,
    data: st.DataObject,
    events: Callable[[type[Event]], Any],
) -> None:
    event, topic = data.draw(encodable(events(model)))
    codec = CODECS[framing]
    record = codec.encode(event, topic)
    decoded = codec.decode(record.value, record.headers, topic=topic, key=record.key)
    assert decoded.event == event
    assert decoded.framing is framing
    assert decoded.envelope.type == event.event_type
    assert decoded.envelope.subject == str(event.subject)
    assert decoded.envelope.time == event.occurred_at


def test_every_event_type_has_a_topic() -> None:
    contract = single_object_codec().contract
    carried = set().union(*(c.event_types for c in contract.topics.values()))
    assert carried == set(MODELS)


# ---------------------------------------------------------------------- golden bytes


def zigzag(n: int) -> bytes:
    """Avro's long encoding, written out independently of fastavro."""
    value = (n << 1) ^ (n >> 63)
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def avro_string(text: str) -> bytes:
    raw = text.encode()
    return zigzag(len(raw)) + raw


GOLDEN_FINGERPRINT = "d23a2fb13ab305ef"  # CRC-64-AVRO of case.closed v1, little-endian
GOLDEN_VALUE = (
    "c301d23a2fb13ab305ef"
    "4836663163326534612d356233642d346337652d396138622d306431653266336134623563"
    "a4a6e0f8ab65"
    "126e6c2d706f6c696365"
    "02"
)


def test_golden_single_object_bytes() -> None:
    """Pins the framing and body of one event: a change here breaks every reader."""
    record = single_object_codec().encode(
        closed(), INTAKE, event_id="0b7e7f0e-3f5e-4a43-9d3c-2f1f5b8f9a11"
    )
    assert event_schemas().current("case.closed").fingerprint.hex() == GOLDEN_FINGERPRINT
    assert record.value.hex() == GOLDEN_VALUE
    expected = (
        b"\xc3\x01"
        + bytes.fromhex(GOLDEN_FINGERPRINT)
        + avro_string(str(SURVIVOR))
        + zigzag(int(T0.timestamp() * 1000))
        + avro_string("nl-police")
        + zigzag(list(CaseOutcome).index(CaseOutcome.SUPPORT_COMPLETED))
    )
    assert record.value == expected
    assert record.key == b"6f1c2e4a-5b3d-4c7e-9a8b-0d1e2f3a4b5c"
    assert record.headers == [
        ("ce_id", b"0b7e7f0e-3f5e-4a43-9d3c-2f1f5b8f9a11"),
        ("ce_source", b"/safepassage/tests"),
        ("ce_type", b"case.closed"),
        ("ce_specversion", b"1.0"),
        ("ce_time", b"2025-03-04T05:06:07.890Z"),
        ("ce_subject", b"6f1c2e4a-5b3d-4c7e-9a8b-0d1e2f3a4b5c"),
        ("content-type", b"application/avro"),
    ]


def test_golden_confluent_bytes() -> None:
    registry = ConfluentSchemaRegistry.from_config({"url": "mock://golden"})
    schema = event_schemas().current("case.closed")
    schema_id = registry.register(schema.full_name, schema.schema_str)
    record = registry_codec(registry).encode(closed(), INTAKE)
    assert record.value[:5] == b"\x00" + schema_id.to_bytes(4, "big")
    assert record.value[5:] == bytes.fromhex(GOLDEN_VALUE)[10:]


# ---------------------------------------------------------------------- headers and keys


def test_every_record_has_the_cloudevents_headers() -> None:
    record = single_object_codec().encode(closed(), INTAKE)
    names = [name for name, _ in record.headers]
    assert names == list(REQUIRED_HEADERS)
    values = dict(record.headers)
    assert UUID(values["ce_id"].decode())
    assert values["content-type"].decode() == CONTENT_TYPE


def test_event_ids_are_fresh_unless_given() -> None:
    codec = single_object_codec()
    first = dict(codec.encode(closed(), INTAKE).headers)["ce_id"]
    second = dict(codec.encode(closed(), INTAKE).headers)["ce_id"]
    assert first != second
    again = codec.encode(closed(), INTAKE, event_id="retry-1")
    assert dict(again.headers)["ce_id"] == b"retry-1"
    with pytest.raises(EncodeError, match="empty"):
        codec.encode(closed(), INTAKE, event_id="")


def test_provider_events_have_the_provider_as_subject_and_key() -> None:
    event = ProviderCapacity(
        provider_id=PROVIDER,
        occurred_at=T0,
        category=ServiceCategory.HEALTH,
        total=4,
        available=1,
    )
    record = single_object_codec().encode(event, PROVIDERS)
    assert dict(record.headers)["ce_subject"] == str(PROVIDER).encode()
    # One key per category on the compacted directory (see the test further down).
    assert record.key == f"{PROVIDER}/HEALTH".encode()


def test_offers_are_keyed_by_provider_but_about_the_survivor() -> None:
    record = single_object_codec().encode(offered(), HOUSING)
    assert record.key == str(PROVIDER).encode()
    assert dict(record.headers)["ce_subject"] == str(SURVIVOR).encode()


def test_a_cancellation_is_keyed_by_the_topic_it_is_on() -> None:
    codec = single_object_codec()
    event = ReferralCancelled(
        survivor_id=SURVIVOR,
        occurred_at=T0,
        referral_id=uuid4(),
        reason=CancelReason.CONSENT_WITHDRAWN,
        cancelled_by=Actor.SYSTEM,
        provider_id=PROVIDER,
        category=ServiceCategory.HOUSING,
    )
    assert codec.encode(event, INTAKE).key == str(SURVIVOR).encode()
    assert codec.encode(event, HOUSING).key == str(PROVIDER).encode()
    assert codec.contract.topics_for(event) == (INTAKE, HOUSING)
    anonymous = event.model_copy(update={"provider_id": None})
    assert codec.contract.topics_for(anonymous) == (INTAKE,)
    with pytest.raises(EncodeError, match="must name its provider id"):
        codec.encode(anonymous, HOUSING)


def test_case_level_escalations_need_no_referral() -> None:
    event = ReferralEscalated(
        survivor_id=SURVIVOR,
        occurred_at=T0,
        level=2,
        reason=EscalationReason.LEGAL_CLOCK,
        missed_deadline=T0,
        jurisdiction="NL",
    )
    codec = single_object_codec()
    record = codec.encode(event, ESCALATIONS)
    assert codec.decode(record.value, record.headers, topic=ESCALATIONS).event == event


def test_contract_key_kinds_come_from_the_catalog() -> None:
    contract = single_object_codec().contract
    assert contract.topic(INTAKE).key is KeyKind.SURVIVOR
    assert contract.topic(PROVIDERS).key is KeyKind.PROVIDER
    assert contract.topic(HEALTH).category is ServiceCategory.HEALTH
    other = Codec(KafkaSettings(topic_namespace="acme"), source=SOURCE).contract
    assert "acme.intake.v1" in other.topics
    assert INTAKE not in other.topics


def test_key_for_refuses_an_event_without_the_key() -> None:
    contract = single_object_codec().contract
    with pytest.raises(ValueError, match="no provider id"):
        contract.key_for(PROVIDERS, closed())


def test_rfc3339() -> None:
    assert rfc3339(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000Z"
    assert rfc3339(T0) == "2025-03-04T05:06:07.890Z"


def test_decode_accepts_headers_as_a_mapping() -> None:
    codec = single_object_codec()
    record = codec.encode(closed(), INTAKE)
    assert codec.decode(record.value, dict(record.headers)).event == closed()


def test_decode_tolerates_other_headers_and_equivalent_spellings() -> None:
    """Producers in other languages may spell the same time, subject or media type differently."""
    codec = single_object_codec()
    record = codec.encode(closed(), INTAKE)
    equivalent = {
        "ce_time": b"2025-03-04t06:06:07.890123+01:00",
        "ce_subject": str(SURVIVOR).upper().encode(),
        "content-type": b"Application/Avro; charset=binary",
    }
    headers = [("traceparent", b"00-abc"), *((k, equivalent.get(k, v)) for k, v in record.headers)]
    decoded = codec.decode(record.value, headers, topic=INTAKE)
    assert decoded.event == closed()
    assert decoded.envelope.time == T0.replace(microsecond=890123)  # as written


def test_long_header_values_are_cut_in_messages(record: EncodedRecord) -> None:
    headers = replace_header(record, "ce_type", b"x" * 500)
    with pytest.raises(WrongEventType) as caught:
        single_object_codec().decode(record.value, headers)
    assert "x" * 41 not in str(caught.value)


# ---------------------------------------------------------------------- encode errors


def test_encoding_refuses_an_event_not_allowed_on_the_topic() -> None:
    codec = single_object_codec()
    with pytest.raises(EncodeError, match=r"case\.closed is not allowed on .*providers"):
        codec.encode(closed(), PROVIDERS)
    with pytest.raises(EncodeError, match="category HEALTH"):
        codec.encode(offered(category=ServiceCategory.HEALTH), HOUSING)
    with pytest.raises(UnknownTopicError, match="carries no events"):
        codec.encode(closed(), "safepassage.case-status.v1")


def test_encoding_refuses_an_oversized_event() -> None:
    with pytest.raises(EncodeError, match="more than the maximum of 16"):
        single_object_codec(max_record_bytes=16).encode(closed(), INTAKE)


def test_codec_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="source"):
        Codec(SETTINGS, source="")
    with pytest.raises(ValueError, match="source"):
        Codec(SETTINGS, source="agency of Maria")
    with pytest.raises(ValueError, match="positive"):
        Codec(SETTINGS, source=SOURCE, max_record_bytes=0)


class CountingResolver:
    def __init__(self, fail: Exception | None = None) -> None:
        self.inner = ConfluentSchemaRegistry.from_config({"url": "mock://counting"})
        self.registered: list[str] = []
        self.looked_up: list[int] = []
        self.fail = fail

    def register(self, subject: str, schema_str: str) -> int:
        if self.fail:
            raise self.fail
        self.registered.append(subject)
        return self.inner.register(subject, schema_str)

    def schema_for(self, schema_id: int) -> str:
        if self.fail:
            raise self.fail
        self.looked_up.append(schema_id)
        return self.inner.schema_for(schema_id)


def test_subjects_follow_the_record_name_strategy_and_are_registered_once() -> None:
    resolver = CountingResolver()
    codec = Codec(SETTINGS, source=SOURCE, resolver=resolver)
    assert codec.framing is Framing.CONFLUENT
    for _ in range(3):
        record = codec.encode(closed(), INTAKE)
        codec.decode(record.value, record.headers)
    assert resolver.registered == ["org.safepassage.events.CaseClosed"]
    assert resolver.looked_up == []  # ids the codec registered need no lookup
    fresh = Codec(SETTINGS, source=SOURCE, resolver=resolver)
    fresh.decode(record.value, record.headers)
    fresh.decode(record.value, record.headers)
    assert len(resolver.looked_up) == 1


def test_registry_failures_are_transient_not_dead_letters() -> None:
    codec = Codec(SETTINGS, source=SOURCE, resolver=CountingResolver(fail=ConnectionError("down")))
    with pytest.raises(RegistryUnavailableError, match="CaseClosed") as caught:
        codec.encode(closed(), INTAKE)
    assert not isinstance(caught.value, DecodeError)
    value = b"\x00\x00\x00\x00\x07" + avro_body("case.closed", to_avro(closed()))
    headers = registry_codec().encode(closed(), INTAKE).headers
    with pytest.raises(RegistryUnavailableError, match="schema id 7"):
        codec.decode(value, headers)


# ---------------------------------------------------------------------- decode errors


@pytest.fixture
def record() -> EncodedRecord:
    return single_object_codec().encode(closed(), INTAKE)


def test_every_decode_error_is_a_streams_error() -> None:
    for error in (
        UndecodableRecord,
        UnknownSchema,
        WrongEventType,
        MissingHeader,
        InvalidHeader,
        InvalidEvent,
        KeyMismatch,
        OversizedRecord,
    ):
        assert issubclass(error, DecodeError)
        assert issubclass(error, StreamsError)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "no value"),
        (None, "no value"),
        (b"\xc3", "neither Avro single-object"),
        (b'{"json": true}', "starts with 7b22"),
        (b"\xc3\x01\xd2\x3a", "cut short"),
        (b"\x00\x00\x01", "cut short"),
    ],
)
def test_undecodable_frames(record: EncodedRecord, value: bytes | None, message: str) -> None:
    with pytest.raises(UndecodableRecord, match=message):
        single_object_codec().decode(value, record.headers)


def test_truncated_body_is_undecodable(record: EncodedRecord) -> None:
    with pytest.raises(UndecodableRecord, match=r"not valid Avro for case\.closed"):
        single_object_codec().decode(record.value[:-3], record.headers)


def test_trailing_bytes_are_undecodable(record: EncodedRecord) -> None:
    with pytest.raises(UndecodableRecord, match="1 bytes left over"):
        single_object_codec().decode(record.value + b"\x00", record.headers)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200))
def test_garbage_bodies_only_ever_raise_decode_errors(body: bytes) -> None:
    codec = single_object_codec()
    for event_type in ("survivor.identified", "referral.requested", "provider.registered"):
        schema = event_schemas().current(event_type)
        headers = [(k, event_type.encode() if k == "ce_type" else v) for k, v in _headers()]
        with contextlib.suppress(DecodeError):
            codec.decode(b"\xc3\x01" + schema.fingerprint + body, headers)


def _headers() -> list[tuple[str, bytes]]:
    return single_object_codec().encode(closed(), INTAKE).headers


def test_unknown_fingerprint(record: EncodedRecord) -> None:
    value = b"\xc3\x01" + bytes(8) + record.value[10:]
    with pytest.raises(UnknownSchema, match="crc64:0000000000000000"):
        single_object_codec().decode(value, record.headers)


def test_confluent_frame_without_a_registry(record: EncodedRecord) -> None:
    value = b"\x00\x00\x00\x00\x2a" + record.value[10:]
    with pytest.raises(UnknownSchema, match="schema id 42 but no schema registry"):
        single_object_codec().decode(value, record.headers)


def test_unknown_schema_id(record: EncodedRecord) -> None:
    value = b"\x00\x00\x00\x04\x00" + record.value[10:]
    with pytest.raises(UnknownSchema, match="schema id 1024 is not in the registry"):
        registry_codec().decode(value, record.headers)


def test_schema_id_of_a_foreign_record(record: EncodedRecord) -> None:
    registry = ConfluentSchemaRegistry.from_config({"url": "mock://foreign"})
    foreign = json.dumps({"type": "record", "name": "com.acme.Order", "fields": []})
    schema_id = registry.register("com.acme.Order", foreign)
    value = b"\x00" + schema_id.to_bytes(4, "big") + record.value[10:]
    with pytest.raises(UnknownSchema, match="not an event schema of the contract"):
        registry_codec(registry).decode(value, record.headers)


def test_schema_id_of_an_invalid_schema(record: EncodedRecord) -> None:
    class Broken:
        def register(self, subject: str, schema_str: str) -> int:
            raise AssertionError("not used")

        def schema_for(self, schema_id: int) -> str:
            return '{"type": "nonsense"}'

    value = b"\x00\x00\x00\x00\x01" + record.value[10:]
    with pytest.raises(UnknownSchema, match="not a valid Avro schema"):
        Codec(SETTINGS, source=SOURCE, resolver=Broken()).decode(value, record.headers)


def test_ce_type_must_match_the_schema(record: EncodedRecord) -> None:
    headers = replace_header(record, "ce_type", b"survivor.identified")
    with pytest.raises(WrongEventType, match=r"ce_type says 'survivor\.identified'"):
        single_object_codec().decode(record.value, headers)


def test_event_type_must_be_allowed_on_the_topic(record: EncodedRecord) -> None:
    with pytest.raises(WrongEventType, match=r"case\.closed is not allowed on .*escalations"):
        single_object_codec().decode(record.value, record.headers, topic=ESCALATIONS)


def test_offer_on_the_wrong_category_topic() -> None:
    codec = single_object_codec()
    record = codec.encode(offered(), HOUSING)
    with pytest.raises(WrongEventType, match=r"category HOUSING is not allowed on .*health"):
        codec.decode(record.value, record.headers, topic=HEALTH)


def test_decoding_for_an_unknown_topic_is_a_configuration_error(record: EncodedRecord) -> None:
    with pytest.raises(UnknownTopicError):
        single_object_codec().decode(record.value, record.headers, topic="elsewhere")


@pytest.mark.parametrize("name", REQUIRED_HEADERS)
def test_each_required_header(record: EncodedRecord, name: str) -> None:
    headers = [(k, v) for k, v in record.headers if k != name]
    with pytest.raises(MissingHeader, match=name):
        single_object_codec().decode(record.value, headers)
    with pytest.raises(MissingHeader, match=name):
        single_object_codec().decode(record.value, replace_header(record, name, None))
    with pytest.raises(MissingHeader, match=name):
        single_object_codec().decode(record.value, replace_header(record, name, b""))


def test_no_headers_at_all(record: EncodedRecord) -> None:
    with pytest.raises(MissingHeader, match="ce_id, ce_source"):
        single_object_codec().decode(record.value, None)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ce_specversion", b"0.3", "only 1.0"),
        ("content-type", b"application/json", "not application/avro"),
        ("ce_time", b"yesterday", "not an RFC 3339"),
        ("ce_time", b"2025-03-04T05:06:07.890", "not an RFC 3339"),
        ("ce_time", b"2025-02-30T05:06:07Z", "not a valid date"),
        ("ce_time", b"2025-03-04T05:06:07.891Z", "not the occurred_at"),
        ("ce_subject", b"5a246da8-a5d0-4c73-8134-d3f3c7c275e9", "ce_subject does not match"),
        ("ce_subject", b"not-a-uuid", "ce_subject does not match"),
        ("ce_id", b"\xff\xfe", "not UTF-8"),
    ],
)
def test_invalid_headers(record: EncodedRecord, name: str, value: bytes, message: str) -> None:
    with pytest.raises(InvalidHeader, match=message):
        single_object_codec().decode(record.value, replace_header(record, name, value))


def test_repeated_headers_are_ambiguous(record: EncodedRecord) -> None:
    headers = [*record.headers, ("ce_type", b"case.closed")]
    with pytest.raises(InvalidHeader, match="ce_type appears more than once"):
        single_object_codec().decode(record.value, headers)


def test_valid_avro_breaking_the_model_is_an_invalid_event(record: EncodedRecord) -> None:
    data = to_avro(closed()) | {"agency_id": "Maria Lopez, +31 6 12345678"}
    value = record.value[:10] + avro_body("case.closed", data)
    with pytest.raises(InvalidEvent, match="agency_id: string_pattern_mismatch") as caught:
        single_object_codec().decode(value, record.headers)
    assert "Maria" not in str(caught.value)
    assert caught.value.__cause__ is None  # pydantic's error would repeat the value


def test_key_must_be_the_derived_key(record: EncodedRecord) -> None:
    codec = single_object_codec()
    assert codec.decode(record.value, record.headers, topic=INTAKE, key=record.key)
    with pytest.raises(KeyMismatch, match="not its survivor id"):
        codec.decode(record.value, record.headers, topic=INTAKE, key=b"someone-else")


def test_oversized_record(record: EncodedRecord) -> None:
    with pytest.raises(OversizedRecord, match="64 bytes, more than the maximum of 63"):
        single_object_codec(max_record_bytes=63).decode(record.value, record.headers)


def test_error_messages_carry_no_field_values() -> None:
    codec = single_object_codec()
    record = codec.encode(offered(), HOUSING)
    errors: list[DecodeError] = []
    attempts: tuple[Callable[[], object], ...] = (
        lambda: codec.decode(record.value, record.headers, topic=HEALTH),
        lambda: codec.decode(record.value, record.headers, topic=HOUSING, key=b"x"),
        lambda: codec.decode(record.value, replace_header(record, "ce_subject", b"x")),
        lambda: codec.decode(record.value[:-1], record.headers),
    )
    for attempt in attempts:
        with pytest.raises(DecodeError) as caught:
            attempt()
        errors.append(caught.value)
    for error in errors:
        assert str(SURVIVOR) not in str(error)
        assert str(PROVIDER) not in str(error)


# ---------------------------------------------------------------------- evolution


@pytest.fixture
def evolved(tmp_path: Path) -> EventSchemas:
    """Contract where case.closed v1 lacked the OTHER outcome and v2 is current."""
    shutil.copytree(AVRO_DIR, tmp_path / "avro")
    folder = tmp_path / "avro" / "released" / "case.closed"
    old = json.loads((folder / "v1.avsc").read_text())
    outcome = next(f for f in old["fields"] if f["name"] == "outcome")
    outcome["type"]["symbols"].remove("OTHER")
    (folder / "v1.avsc").write_text(json.dumps(old))
    shutil.copy(AVRO_DIR / "case.closed.avsc", folder / "v2.avsc")
    return EventSchemas(tmp_path / "avro", tmp_path / "avro" / "released")


def test_records_of_a_released_version_are_read_as_the_current_model(
    evolved: EventSchemas, record: EncodedRecord
) -> None:
    old = evolved.released("case.closed")[0]
    body = io.BytesIO()
    schemaless_writer(body, old.parsed, to_avro(closed(outcome=CaseOutcome.TRANSFERRED)))
    value = b"\xc3\x01" + old.fingerprint + body.getvalue()
    codec = Codec(SETTINGS, source=SOURCE, schemas=evolved)
    decoded = codec.decode(value, record.headers)
    assert decoded.event == closed(outcome=CaseOutcome.TRANSFERRED)
    assert decoded.writer_schema == f"crc64:{old.fingerprint.hex()}"


def test_a_newer_enum_symbol_reads_as_unknown(record: EncodedRecord) -> None:
    """A producer with a newer schema in the registry: its new symbol becomes UNKNOWN."""
    newer = json.loads((AVRO_DIR / "case.closed.avsc").read_text())
    outcome = next(f for f in newer["fields"] if f["name"] == "outcome")
    outcome["type"]["symbols"].append("REUNITED_WITH_FAMILY")
    registry = ConfluentSchemaRegistry.from_config({"url": "mock://newer"})
    schema_id = registry.register("org.safepassage.events.CaseClosed", json.dumps(newer))
    body = io.BytesIO()
    data = to_avro(closed()) | {"outcome": "REUNITED_WITH_FAMILY"}
    schemaless_writer(body, parse(newer)[0], data)
    value = b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()
    decoded = registry_codec(registry).decode(value, record.headers, topic=INTAKE)
    assert decoded.event == closed(outcome=CaseOutcome.UNKNOWN)
    assert decoded.framing is Framing.CONFLUENT


# ---------------------------------------------------------------------- dead letters


def test_deadletter_headers_keep_the_original_and_add_the_reason() -> None:
    original = [("ce_id", b"1"), ("trace", None), ("ce_id", b"dup")]
    error = UnknownSchema("no schema of the contract has fingerprint crc64:00")
    headers = deadletter_headers(original, error, topic=INTAKE, partition=3, offset=1234)
    assert headers[:3] == original
    assert dict(headers[3:]) == {
        "deadletter.error.class": b"UnknownSchema",
        "deadletter.error.message": b"no schema of the contract has fingerprint crc64:00",
        "deadletter.source.topic": INTAKE.encode(),
        "deadletter.source.partition": b"3",
        "deadletter.source.offset": b"1234",
    }
    assert [name for name, _ in headers[3:]] == list(DEADLETTER_HEADERS)
    assert original == [("ce_id", b"1"), ("trace", None), ("ce_id", b"dup")]


def test_deadletter_headers_from_a_mapping_or_nothing() -> None:
    error = MissingHeader("missing or empty header(s): ce_id")
    assert deadletter_headers({"a": b"1"}, error, topic="t", partition=0, offset=0)[0] == (
        "a",
        b"1",
    )
    headers = deadletter_headers(None, error, topic="t", partition=0, offset=0)
    assert len(headers) == len(DEADLETTER_HEADERS)


def test_deadletter_messages_are_bounded() -> None:
    headers = deadletter_headers([], InvalidEvent("x" * 5000), topic="t", partition=0, offset=0)
    assert len(dict(headers)["deadletter.error.message"] or b"") == 1000


# ---------------------------------------------------------------------- adapter


def test_adapter_over_the_confluent_client() -> None:
    registry = ConfluentSchemaRegistry.from_config({"url": "mock://adapter"})
    schema = event_schemas().current("case.closed")
    first = registry.register(schema.full_name, schema.schema_str)
    assert registry.register(schema.full_name, schema.schema_str) == first
    assert parse(registry.schema_for(first))[2] == schema.fingerprint
    with pytest.raises(UnknownSchema):
        registry.schema_for(first + 100)


def test_adapter_passes_other_registry_errors_on() -> None:
    class Failing:
        def register_schema(self, subject_name: str, schema: Any) -> int:
            raise AssertionError("not used")

        def get_schema(self, schema_id: int) -> Any:
            raise SchemaRegistryError(500, 50001, "internal error")

        def close(self) -> None:
            return None

    with pytest.raises(SchemaRegistryError):
        ConfluentSchemaRegistry(Failing()).schema_for(1)


def test_capacity_reports_have_a_key_per_category_on_the_compacted_directory() -> None:
    """A capacity report must not replace the provider's registration under compaction."""
    contract = Contract(KafkaSettings())
    pid = UUID(int=7)
    report = ProviderCapacity(
        provider_id=pid,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        category=ServiceCategory.HEALTH,
        total=4,
        available=1,
    )
    assert contract.key_for(PROVIDERS, report) == f"{pid}/HEALTH".encode()
    codec = single_object_codec()
    record = codec.encode(report, PROVIDERS)
    assert (
        codec.decode(record.value, record.headers, topic=PROVIDERS, key=record.key).event == report
    )


def test_a_providers_own_offer_topic_carries_its_offers_and_nothing_else() -> None:
    """The relay's byte-for-byte copy decodes on the provider's topic; another's offer does not."""
    settings = KafkaSettings()
    contract, topics = Contract(settings), Topics.of(settings)
    own = topics.offers(PROVIDER)
    assert own == f"{settings.topic_namespace}.offers.{PROVIDER}.v1"
    assert own.startswith(topics.offers_prefix)
    assert offers_spec(settings, str(PROVIDER)).name == own
    assert offers_spec(settings, str(PROVIDER)).partitions == 1  # keyed by the provider alone
    shape = contract.topic(own)
    assert (shape.key, shape.event_types, shape.provider) == (
        KeyKind.PROVIDER,
        OFFER_EVENTS,
        PROVIDER,
    )

    codec = single_object_codec()
    mine, theirs = offered(), offered(provider_id=UUID(int=99))
    copy = codec.encode(mine, topics.referral("housing"))
    assert codec.decode(copy.value, copy.headers, topic=own, key=copy.key).event == mine
    stray = codec.encode(theirs, topics.referral("housing"))
    with pytest.raises(DecodeError, match="another provider"):
        codec.decode(stray.value, stray.headers, topic=own, key=stray.key)
    assert "another provider" in (contract.violation(own, theirs) or "")

    for name in (f"{topics.offers_prefix}not-a-uuid.v1", f"{topics.offers_prefix}{PROVIDER}.v2"):
        with pytest.raises(UnknownTopicError):
            contract.topic(name)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (str(PROVIDER).encode(), PROVIDER),
        (None, None),
        (b"not-a-uuid", None),
        (b"\xff\xfe", None),
    ],
)
def test_a_provider_keyed_record_names_its_provider_or_none(
    key: bytes | None, expected: UUID | None
) -> None:
    assert provider_of(key) == expected
