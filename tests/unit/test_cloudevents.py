"""The CloudEvents wire (streams.cloudevents): round trips, and the old code's exact errors.

The oracles below are the code this module replaced, copied as it was
(streams/codec.py's header checks, connectors/sdk/cloudevents.py's
structured document, the intake's agreement check). Every property here
says the new module writes the same bytes and refuses with the same class
and message, whatever it is given.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.models import MODELS, Event
from schemas.types import Sealed, utc_millis
from streams.cloudevents import (
    AVRO_MEDIA_TYPE,
    BATCH_MEDIA_TYPE,
    CE_ID,
    CE_SOURCE,
    CE_SPECVERSION,
    CE_SUBJECT,
    CE_TIME,
    CE_TYPE,
    CONTENT_TYPE_HEADER,
    ID_PATTERN,
    REQUIRED_HEADERS,
    SPECVERSION,
    STRUCTURED_MEDIA_TYPE,
    StructuredEvent,
    batch,
    binary_headers,
    check_agreement,
    disagreements,
    envelope,
    event_data,
    is_party_id,
    parse_time,
    read_headers,
    rfc3339,
    sealed_from_json,
    structured,
    unknown_attributes,
)
from streams.exceptions import EncodeError, InvalidHeader, MissingHeader, StreamsError

SOURCES = st.from_regex(r"\A/[!-~]{0,40}\Z")
IDS = st.from_regex(r"\A[!-~]{1,64}\Z")
PARTY_IDS = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.from_regex(r"\A[0-7][0-9A-HJKMNP-TV-Z]{25}\Z"),  # ULIDs (Crockford base32)
)
HEADER_VALUES = st.one_of(
    st.none(),
    st.binary(max_size=40),
    st.text(max_size=40).map(str.encode),
    st.sampled_from(
        [
            b"",
            b"1.0",
            b"0.3",
            b"application/avro",
            b"Application/Avro; charset=binary",
            b"application/json",
            b"2025-03-04T05:06:07.890Z",
            b"2025-03-04t06:06:07.890123+01:00",
            b"2025-02-30T05:06:07Z",
            b"2025-03-04T05:06:07.890",
            b"2025-03-04",
            b"\xff\xfe",
        ]
    ),
)


T0 = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


def closed(at: datetime = T0) -> Event:
    return MODELS["case.closed"].model_validate(
        {
            "survivor_id": uuid.UUID("6f1c2e4a-5b3d-4c7e-9a8b-0d1e2f3a4b5c"),
            "occurred_at": at,
            "agency_id": "nl-police",
            "outcome": "SUPPORT_COMPLETED",
        }
    )


def any_event(events: Callable[[type[Event]], Any]) -> st.SearchStrategy[Event]:
    return st.sampled_from(sorted(MODELS)).flatmap(lambda t: events(MODELS[t]))


# --------------------------------------------------------------------------- oracles


_OLD_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def old_shown(value: str) -> str:
    return repr(value[:40] + ("…" if len(value) > 40 else ""))


def old_headers(event: Event, event_id: str, source: str) -> list[tuple[str, bytes]]:
    """streams/codec.py's encode, before the SDK wrote the headers."""
    text = utc_millis(event.occurred_at).isoformat(timespec="milliseconds")
    headers = [
        ("ce_id", event_id),
        ("ce_source", source),
        ("ce_type", event.event_type),
        ("ce_specversion", "1.0"),
        ("ce_time", text.removesuffix("+00:00") + "Z"),
        ("ce_subject", str(event.subject)),
        ("content-type", "application/avro"),
    ]
    return [(name, value.encode("utf-8")) for name, value in headers]


def old_read(headers: Any, event: Event) -> tuple[str, ...]:  # noqa: PLR0912 - as it was
    """streams/codec.py's _read_headers, _envelope and _check_agreement: the outcome."""
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    found: dict[str, str] = {}
    for name, raw in items:
        if name not in REQUIRED_HEADERS or raw is None:
            continue
        if name in found:
            raise InvalidHeader(f"header {name} appears more than once")
        try:
            found[name] = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidHeader(f"header {name} is not UTF-8") from None
    missing = [name for name in REQUIRED_HEADERS if not found.get(name)]
    if missing:
        raise MissingHeader(f"missing or empty header(s): {', '.join(missing)}")
    if found["ce_specversion"] != "1.0":
        raise InvalidHeader(
            f"ce_specversion is {old_shown(found['ce_specversion'])}; only 1.0 is supported"
        )
    media_type = found["content-type"].split(";", 1)[0].strip().lower()
    if media_type != "application/avro":
        raise InvalidHeader(f"content-type is {old_shown(media_type)}, not application/avro")
    text = found["ce_time"]
    if not _OLD_RFC3339.fullmatch(text):
        raise InvalidHeader("ce_time is not an RFC 3339 timestamp")
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        raise InvalidHeader("ce_time is not a valid date and time") from None
    try:
        same_subject = uuid.UUID(found["ce_subject"]) == event.subject
    except ValueError:
        same_subject = False
    if not same_subject:
        raise InvalidHeader(f"ce_subject does not match the subject of this {event.event_type}")
    try:
        same_time = utc_millis(moment) == event.occurred_at
    except ValueError:
        same_time = False
    if not same_time:
        raise InvalidHeader(f"ce_time is not the occurred_at of this {event.event_type}")
    return (found["ce_id"], found["ce_source"], found["ce_type"], str(moment))


def new_read(headers: Any, event: Event) -> tuple[str, ...]:
    attrs = read_headers(headers)
    read = envelope(attrs)
    check_agreement(read, event)
    return (read.id, read.source, read.type, str(read.time))


def outcome(read: Callable[[], tuple[str, ...]]) -> tuple[str, ...]:
    try:
        return ("ok", *read())
    except StreamsError as exc:
        return (type(exc).__name__, str(exc))


def old_structured(event: Event, event_id: str, source: str) -> dict[str, Any]:
    """connectors/sdk/cloudevents.py's structured_cloudevent."""
    sealed = {
        name: value
        for name in type(event).model_fields
        if isinstance(value := getattr(event, name), Sealed)
    }
    data = event.model_dump(mode="json", exclude=set(sealed))
    for name, value in sealed.items():
        data[name] = {
            **value.model_dump(mode="json", exclude={"ciphertext"}),
            "ciphertext": base64.b64encode(value.ciphertext).decode("ascii"),
        }
    text = utc_millis(event.occurred_at).isoformat(timespec="milliseconds")
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event.event_type,
        "time": text.removesuffix("+00:00") + "Z",
        "subject": str(event.subject),
        "datacontenttype": "application/json",
        "data": data,
    }


def old_agreement(time: str, subject: str | None, event: Event) -> list[tuple[str, str]]:
    """connectors/intake/cloudevents.py's _agreement (time already matched the pattern)."""
    errors = []
    try:
        moment = utc_millis(datetime.fromisoformat(time.upper()))
    except ValueError:
        errors.append(("/time", "not a valid RFC 3339 date and time"))
    else:
        if moment != event.occurred_at:
            errors.append(("/time", "must equal data.occurred_at (to the millisecond)"))
    if subject is not None:
        try:
            same = uuid.UUID(subject) == event.subject
        except ValueError:
            same = False
        if not same:
            errors.append(("/subject", "must be the event's subject (the survivor id) or absent"))
    return errors


def new_agreement(time: str, subject: str | None, event: Event) -> list[tuple[str, str]]:
    """What the intake now does with the shared parts (as connectors/intake/cloudevents.py)."""
    errors = []
    try:
        moment = utc_millis(parse_time(time))
    except ValueError:
        moment = None
        errors.append(("/time", "not a valid RFC 3339 date and time"))
    messages = {
        "time": "must equal data.occurred_at (to the millisecond)",
        "subject": "must be the event's subject (the survivor id) or absent",
    }
    return errors + [(f"/{n}", messages[n]) for n in disagreements(moment, subject, event)]


# --------------------------------------------------------------------------- Kafka binary mode


@settings(max_examples=300, deadline=None)
@given(data=st.data(), event_id=IDS, source=SOURCES)
def test_binary_headers_decode_to_what_was_encoded(
    data: st.DataObject, event_id: str, source: str, events: Callable[[type[Event]], Any]
) -> None:
    event = data.draw(any_event(events))
    headers = binary_headers(event, event_id=event_id, source=source)

    read = envelope(read_headers(headers))
    check_agreement(read, event)
    assert (read.id, read.source, read.type) == (event_id, source, event.event_type)
    assert (read.specversion, read.content_type) == (SPECVERSION, AVRO_MEDIA_TYPE)
    assert read.time == event.occurred_at and read.subject == str(event.subject)
    assert [name for name, _ in headers] == list(REQUIRED_HEADERS)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), event_id=IDS, source=SOURCES)
def test_the_sdk_writes_the_bytes_the_hand_written_encoder_wrote(
    data: st.DataObject, event_id: str, source: str, events: Callable[[type[Event]], Any]
) -> None:
    event = data.draw(any_event(events))
    assert binary_headers(event, event_id=event_id, source=source) == old_headers(
        event, event_id, source
    )


def test_times_keep_their_milliseconds_whole_seconds_included() -> None:
    """The SDK alone would write 05:06:07Z and 05:06:07.890000Z; the contract says .000 / .890."""
    for at, text in [(T0, "2025-03-04T05:06:07.890Z"), (T0.replace(microsecond=0), "…07.000Z")]:
        event = closed(at=at)
        headers = dict(binary_headers(event, event_id="a", source="/s"))
        assert headers[CE_TIME].decode().endswith(text.removeprefix("…"))
        document = json.loads(structured(event, event_id="a", source="/s"))
        assert document["time"] == headers[CE_TIME].decode()
    assert rfc3339(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000Z"


@settings(max_examples=500, deadline=None)
@given(
    data=st.data(),
    changes=st.dictionaries(st.sampled_from(REQUIRED_HEADERS), HEADER_VALUES, max_size=4),
    dropped=st.sets(st.sampled_from(REQUIRED_HEADERS), max_size=2),
    repeated=st.lists(st.sampled_from(REQUIRED_HEADERS), max_size=1),
    extra=st.lists(st.tuples(st.sampled_from(["traceparent", "ce_extra", "x"]), HEADER_VALUES)),
    as_mapping=st.booleans(),
)
def test_every_malformed_header_gives_the_error_the_old_code_gave(  # noqa: PLR0917
    data: st.DataObject,
    changes: dict[str, bytes | None],
    dropped: set[str],
    repeated: list[str],
    extra: list[tuple[str, bytes | None]],
    as_mapping: bool,
    events: Callable[[type[Event]], Any],
) -> None:
    event = data.draw(any_event(events))
    good = binary_headers(event, event_id="id-1", source="/s")
    headers: list[tuple[str, bytes | None]] = [
        (name, changes.get(name, value)) for name, value in good if name not in dropped
    ]
    headers += [(name, dict(good)[name]) for name in repeated] + extra
    given_headers: Any = dict(headers) if as_mapping else headers

    assert outcome(lambda: new_read(given_headers, event)) == outcome(
        lambda: old_read(given_headers, event)
    )


@pytest.mark.parametrize(
    ("name", "value", "error", "message"),
    [
        (CE_SPECVERSION, b"0.3", InvalidHeader, "ce_specversion is '0.3'; only 1.0 is supported"),
        (CONTENT_TYPE_HEADER, b"application/json", InvalidHeader, "not application/avro"),
        (CE_TIME, b"2025-03-04", InvalidHeader, "ce_time is not an RFC 3339 timestamp"),
        (CE_TIME, b"2025-02-30T05:06:07Z", InvalidHeader, "ce_time is not a valid date"),
        (CE_SUBJECT, b"not-a-uuid", InvalidHeader, "ce_subject does not match"),
        (CE_ID, b"\xff", InvalidHeader, "header ce_id is not UTF-8"),
        (CE_SOURCE, b"", MissingHeader, "missing or empty header(s): ce_source"),
        (CE_TYPE, None, MissingHeader, "missing or empty header(s): ce_type"),
    ],
)
def test_where_the_sdk_is_lenient_the_wire_is_strict(
    name: str, value: bytes | None, error: type[Exception], message: str
) -> None:
    """Each case the SDK's from_binary would accept (or fail on without naming the header)."""
    event = closed()
    good = binary_headers(event, event_id="i", source="/s")
    headers = [(k, value if k == name else v) for k, v in good]
    with pytest.raises(error) as caught:
        new_read(headers, event)
    assert message in str(caught.value)


def test_an_event_the_sdk_refuses_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match="id"):
        binary_headers(closed(), event_id="", source="/s")
    with pytest.raises(EncodeError, match="source"):
        structured(closed(), event_id="i", source="")


# --------------------------------------------------------------------------- HTTP JSON


@settings(max_examples=300, deadline=None)
@given(data=st.data(), event_id=PARTY_IDS, source=SOURCES)
def test_structured_json_decodes_to_what_was_encoded(
    data: st.DataObject, event_id: str, source: str, events: Callable[[type[Event]], Any]
) -> None:
    event = data.draw(any_event(events))
    document = json.loads(structured(event, event_id=event_id, source=source))

    assert document == old_structured(event, event_id, source)  # what the SDKs always sent
    assert unknown_attributes(document) == []
    read = StructuredEvent.model_validate(document)
    body, invalid = sealed_from_json(read.type, read.data)
    assert invalid == []
    assert MODELS[read.type].model_validate(body) == event
    assert disagreements(parse_time(read.time), read.subject, event) == []
    assert (read.id, read.source) == (event_id, source)
    assert event_data(event) == document["data"]


@given(event_id=IDS)
def test_a_party_id_is_a_uuid_or_a_ulid_and_nothing_else(event_id: str) -> None:
    """Free text could carry a name into headers, logs and the audit (PARTY_ID_PATTERN)."""
    expected = _is_uuid(event_id) or re.fullmatch(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", event_id.upper())
    assert is_party_id(event_id) == bool(expected)


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower() and len(text) == 36
    except ValueError:
        return False


@given(event_id=PARTY_IDS)
def test_every_uuid_and_ulid_is_a_party_id(event_id: str) -> None:
    assert is_party_id(event_id)
    assert not is_party_id(event_id + "x") and not is_party_id("maria-popescu-0712345678")


@settings(max_examples=50, deadline=None)
@given(data=st.data(), count=st.integers(min_value=0, max_value=5))
def test_a_batch_is_the_json_array_of_structured_events(
    data: st.DataObject, count: int, events: Callable[[type[Event]], Any]
) -> None:
    items = [data.draw(any_event(events)) for _ in range(count)]
    documents = [structured(e, event_id=f"e-{i}", source="/s") for i, e in enumerate(items)]
    assert json.loads(batch(documents)) == [json.loads(d) for d in documents]


def test_media_types() -> None:
    assert STRUCTURED_MEDIA_TYPE == "application/cloudevents+json"
    assert BATCH_MEDIA_TYPE == "application/cloudevents-batch+json"
    assert re.fullmatch(ID_PATTERN, "a" * 256) and not re.fullmatch(ID_PATTERN, "a b")


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    time=st.from_regex(_OLD_RFC3339, fullmatch=True),
    subject=st.none() | st.uuids().map(str) | st.text(max_size=40),
)
def test_every_disagreement_gives_the_field_errors_the_old_intake_gave(
    data: st.DataObject, time: str, subject: str | None, events: Callable[[type[Event]], Any]
) -> None:
    event = data.draw(any_event(events))
    if data.draw(st.booleans()):
        time = rfc3339(event.occurred_at)
    if subject is not None and data.draw(st.booleans()):
        subject = str(event.subject).upper()
    assert new_agreement(time, subject, event) == old_agreement(time, subject, event)


def test_only_core_attributes_and_data_are_accepted() -> None:
    document = {"specversion": "1.0", "data": {}, "data_base64": "AA==", "traceid": "x"}
    assert unknown_attributes(document) == [
        ("data_base64", "binary data (data_base64) is not accepted; send data as JSON"),
        (
            "traceid",
            "extension attributes are not accepted (they would travel unsealed in Kafka headers)",
        ),
    ]


def test_sealed_ciphertext_that_is_not_base64_is_named() -> None:
    data = {"personal_data": {"ciphertext": "not base64!", "key_id": "k"}}
    decoded, invalid = sealed_from_json("survivor.identified", data)
    assert invalid == ["personal_data"] and decoded == data
    good = {"personal_data": {"ciphertext": "AAEC", "key_id": "k"}}
    decoded, invalid = sealed_from_json("survivor.identified", good)
    assert invalid == [] and decoded["personal_data"]["ciphertext"] == b"\x00\x01\x02"
