"""Kafka records ⇄ typed events: Avro bodies, CloudEvents headers, typed failures.

**Value.** The Avro binary encoding of the event's current schema, framed in
one of two ways; decoding recognises both by their first bytes:

* Avro *single-object encoding* (default): ``C3 01``, the 8-byte little-endian
  CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form, the body.
  Self-describing without any service: any Avro library can resolve the
  fingerprint against the ``.avsc`` files.
* Confluent wire format, when a :class:`SchemaIdResolver` is configured:
  ``00``, the 4-byte big-endian schema-registry id, the body. Subjects follow
  the *RecordNameStrategy*: the subject is the record's full name (e.g.
  ``org.safepassage.events.ReferralCancelled``). One topic carries several
  event types, so the topic name cannot be the subject, and one event type
  (``referral.cancelled``) appears on several topics with one schema history.

Records written with a released older version of a schema (or any
registry version of the same record) are resolved to the current schema.

**Headers.** CloudEvents 1.0 binary mode, written and read by
:mod:`streams.cloudevents`. **Key.** Derived from the topic
(:meth:`streams.contract.Contract.key_for`).

**Failures.** Every way a record can be bad raises a subclass of
:class:`~streams.exceptions.DecodeError`, which a consumer dead-letters with
:func:`deadletter_headers`; :class:`~streams.exceptions.RegistryUnavailableError`
is transient and must be retried instead. Messages never contain field values.
"""

from __future__ import annotations

import io
import re
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from fastavro import schemaless_reader, schemaless_writer
from pydantic import ValidationError

from schemas.models import Event, from_avro, to_avro
from schemas.registry import EventSchemas, event_schemas, parse
from streams.cloudevents import (
    CE_TYPE,
    Envelope,
    Headers,
    binary_headers,
    check_agreement,
    envelope,
    read_headers,
    shown,
)
from streams.contract import Contract
from streams.exceptions import (
    EncodeError,
    InvalidEvent,
    KeyMismatch,
    OversizedRecord,
    RegistryUnavailableError,
    UndecodableRecord,
    UnknownSchema,
    WrongEventType,
)
from streams.settings import KafkaSettings
from streams.tracing import traceparent_of

__all__ = [
    "CONFLUENT_MAGIC",
    "DEFAULT_MAX_RECORD_BYTES",
    "SINGLE_OBJECT_MAGIC",
    "Codec",
    "ConfluentSchemaRegistry",
    "Decoded",
    "EncodedRecord",
    "Framing",
    "SchemaIdResolver",
]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_FINGERPRINT_BYTES = 8
_SCHEMA_ID = struct.Struct(">I")

DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
"""Kafka's default ``message.max.bytes`` is about this; events are far smaller."""

_URI_REFERENCE = re.compile(r"^[!#-~]+$")  # printable ASCII without spaces or quotes


class Framing(StrEnum):
    SINGLE_OBJECT = "single-object"
    CONFLUENT = "confluent"


class SchemaIdResolver(Protocol):
    """A schema registry as the codec needs it (see :class:`ConfluentSchemaRegistry`)."""

    def register(self, subject: str, schema_str: str) -> int:
        """Register ``schema_str`` under ``subject`` (idempotently); its id."""

    def schema_for(self, schema_id: int) -> str:
        """The schema text of an id; raise :class:`UnknownSchema` if the registry has none.

        Any other exception means the registry could not answer, and becomes
        :class:`RegistryUnavailableError` (retry, do not dead-letter).
        """


class _RegistryClient(Protocol):
    """The part of confluent-kafka's ``SchemaRegistryClient`` the adapter uses."""

    def register_schema(self, subject_name: str, schema: Any) -> int: ...

    def get_schema(self, schema_id: int) -> Any: ...

    def close(self) -> None: ...


class ConfluentSchemaRegistry:
    """:class:`SchemaIdResolver` over confluent-kafka's schema-registry client.

    Works with Confluent Schema Registry and with Apicurio Registry's
    Confluent-compatible API (``/apis/ccompat/v7``). The client caches both
    directions itself. Needs ``confluent-kafka[schemaregistry]``; it is
    imported only when an adapter is built from a configuration.
    """

    def __init__(self, client: _RegistryClient) -> None:
        self._client = client

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ConfluentSchemaRegistry:
        """Build the client from its configuration (``{"url": ...}``; ``mock://`` for tests)."""
        from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415

        return cls(SchemaRegistryClient.new_client(dict(config)))

    def close(self) -> None:
        """Close the client's HTTP connections (a client left open leaks its sockets)."""
        self._client.close()

    def __enter__(self) -> ConfluentSchemaRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register(self, subject: str, schema_str: str) -> int:
        from confluent_kafka.schema_registry import Schema  # noqa: PLC0415

        return int(self._client.register_schema(subject, Schema(schema_str, "AVRO")))

    def schema_for(self, schema_id: int) -> str:
        """The schema text of ``schema_id``; :class:`UnknownSchema` on HTTP 404."""
        from confluent_kafka.schema_registry.error import (  # noqa: PLC0415
            SchemaRegistryError,
        )

        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise UnknownSchema(f"schema id {schema_id} is not in the registry") from exc
            raise
        return str(schema.schema_str)


@dataclass(frozen=True)
class EncodedRecord:
    """What to hand to a producer: key, value and headers, for one topic."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class Decoded:
    """A decoded record: its envelope, its typed event, and how it was framed."""

    envelope: Envelope
    event: Event
    framing: Framing
    writer_schema: str
    """Which schema wrote the body: ``crc64:<hex>`` or ``id:<n>``."""
    traceparent: str | None = None
    """The record's W3C ``traceparent`` header, when it has a valid one (streams.tracing)."""


@dataclass(frozen=True)
class _Writer:
    """A writer schema resolved from a record's frame."""

    event_type: str
    parsed: Any
    ref: str


class Codec:
    """Encodes events for, and decodes records from, the topics of one namespace.

    One instance per service: it caches the schema registry's answers. It does
    no I/O except through the optional resolver.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        source: str,
        resolver: SchemaIdResolver | None = None,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        schemas: EventSchemas | None = None,
    ) -> None:
        """Configure the codec.

        ``source`` is the CloudEvents source of what this service writes, a
        URI-reference such as ``/safepassage/router``; it names a service,
        never a person. With a ``resolver``, events are written in the
        Confluent wire format; without one, in single-object encoding.
        """
        if not _URI_REFERENCE.fullmatch(source):
            raise ValueError("source must be a non-empty URI-reference without spaces")
        if max_record_bytes < 1:
            raise ValueError("max_record_bytes must be positive")
        self.source = source
        self.contract = Contract(settings)
        self.max_record_bytes = max_record_bytes
        self._resolver = resolver
        self._schemas = schemas or event_schemas()
        self._ids: dict[str, int] = {}
        self._by_id: dict[int, _Writer] = {}

    @property
    def framing(self) -> Framing:
        """How :meth:`encode` frames values."""
        return Framing.SINGLE_OBJECT if self._resolver is None else Framing.CONFLUENT

    def encode(
        self,
        event: Event,
        topic: str,
        *,
        event_id: str | None = None,
        source: str | None = None,
    ) -> EncodedRecord:
        """Key, value and CloudEvents headers of ``event`` on ``topic``.

        Pass the same ``event_id`` when re-publishing the same fact, so that
        consumers can drop the duplicate. ``source`` overrides the codec's
        CloudEvents source for this record: a gateway (the intake API)
        forwards its callers' events under *their* source and id, which is
        what idempotency downstream keys on. Raises :class:`EncodeError` when the
        event may not go on the topic or is too large,
        :class:`~streams.exceptions.UnknownTopicError` for a topic outside the
        contract and :class:`RegistryUnavailableError` when registering fails.
        """
        reason = self.contract.violation(topic, event)
        if reason is not None:
            raise EncodeError(reason)
        value = self._frame(event.event_type) + self._body(event)
        if len(value) > self.max_record_bytes:
            raise EncodeError(
                f"{event.event_type} encodes to {len(value)} bytes, more than the "
                f"maximum of {self.max_record_bytes}"
            )
        headers = binary_headers(  # refuses an empty id or source (EncodeError)
            event,
            event_id=str(uuid.uuid4()) if event_id is None else event_id,
            source=self.source if source is None else source,
        )
        return EncodedRecord(topic, self.contract.key_for(topic, event), value, headers)

    def _sized(self, value: bytes | None) -> bytes:
        if not value:
            raise UndecodableRecord("the record has no value (a tombstone?)")
        if len(value) > self.max_record_bytes:
            raise OversizedRecord(
                f"the value has {len(value)} bytes, more than the maximum of "
                f"{self.max_record_bytes}"
            )
        return value

    def _body(self, event: Event) -> bytes:
        schema = self._schemas.current(event.event_type)
        out = io.BytesIO()
        try:
            schemaless_writer(out, schema.parsed, to_avro(event), strict=True)
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            # The models are stricter than the schemas; this is a contract defect.
            raise EncodeError(
                f"{event.event_type} does not fit its schema ({type(exc).__name__}); "
                f"the model and the .avsc are out of step"
            ) from exc
        return out.getvalue()

    def _frame(self, event_type: str) -> bytes:
        schema = self._schemas.current(event_type)
        if self._resolver is None:
            return SINGLE_OBJECT_MAGIC + schema.fingerprint
        schema_id = self._ids.get(event_type)
        if schema_id is None:
            try:
                schema_id = self._resolver.register(schema.full_name, schema.schema_str)
            except Exception as exc:
                raise RegistryUnavailableError(
                    f"could not register subject {schema.full_name} ({type(exc).__name__}: {exc})"
                ) from exc
            self._ids[event_type] = schema_id
            self._by_id[schema_id] = _Writer(event_type, schema.parsed, f"id:{schema_id}")
        return CONFLUENT_MAGIC + _SCHEMA_ID.pack(schema_id)

    def decode(
        self,
        value: bytes | None,
        headers: Headers | None,
        *,
        topic: str | None = None,
        key: bytes | None = None,
    ) -> Decoded:
        """The envelope and typed event of a record.

        With ``topic``, the event type must be allowed there and, with ``key``
        too, the key must be the one the contract derives. Checks run from the
        cheapest: size, headers, framing and schema, event type, body, model,
        then agreement of headers and key with the event. Raises a
        :class:`~streams.exceptions.DecodeError` subclass for a bad record;
        :class:`RegistryUnavailableError` and
        :class:`~streams.exceptions.UnknownTopicError` are not the record's fault.
        """
        value = self._sized(value)
        attrs = read_headers(headers)
        writer, framing, offset = self._writer(value)
        if attrs[CE_TYPE] != writer.event_type:
            raise WrongEventType(
                f"ce_type says {shown(attrs[CE_TYPE])} but the schema ({writer.ref}) is "
                f"{writer.event_type}"
            )
        if topic is not None:
            allowed = self.contract.topic(topic).event_types
            if writer.event_type not in allowed:
                raise WrongEventType(
                    f"{writer.event_type} is not allowed on {topic} "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )
        event = self._event(writer, value, offset)
        if topic is not None:
            reason = self.contract.violation(topic, event)
            if reason is not None:
                raise WrongEventType(reason)
        attributes = envelope(attrs)
        check_agreement(attributes, event)
        if topic is not None and key is not None and key != self.contract.key_for(topic, event):
            raise KeyMismatch(
                f"the key of this {event.event_type} on {topic} is not its "
                f"{self.contract.topic(topic).key.value}"
            )
        return Decoded(attributes, event, framing, writer.ref, traceparent_of(headers))

    def _writer(self, value: bytes) -> tuple[_Writer, Framing, int]:
        if value.startswith(SINGLE_OBJECT_MAGIC):
            end = len(SINGLE_OBJECT_MAGIC) + _FINGERPRINT_BYTES
            if len(value) < end:
                raise UndecodableRecord("single-object header is cut short")
            fp = value[len(SINGLE_OBJECT_MAGIC) : end]
            schema = self._schemas.by_fingerprint(fp)
            if schema is None:
                raise UnknownSchema(f"no schema of the contract has fingerprint crc64:{fp.hex()}")
            writer = _Writer(schema.event_type, schema.parsed, f"crc64:{fp.hex()}")
            return writer, Framing.SINGLE_OBJECT, end
        if value.startswith(CONFLUENT_MAGIC):
            end = len(CONFLUENT_MAGIC) + _SCHEMA_ID.size
            if len(value) < end:
                raise UndecodableRecord("Confluent wire-format header is cut short")
            (schema_id,) = _SCHEMA_ID.unpack_from(value, len(CONFLUENT_MAGIC))
            return self._writer_by_id(schema_id), Framing.CONFLUENT, end
        raise UndecodableRecord(
            f"the value starts with {value[:2].hex()}, neither Avro single-object "
            f"encoding (c301) nor the Confluent wire format (00)"
        )

    def _writer_by_id(self, schema_id: int) -> _Writer:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        if self._resolver is None:
            raise UnknownSchema(
                f"the record names schema id {schema_id} but no schema registry is configured"
            )
        try:
            schema_str = self._resolver.schema_for(schema_id)
        except UnknownSchema:
            raise
        except Exception as exc:
            raise RegistryUnavailableError(
                f"the schema registry could not return schema id {schema_id} "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        try:
            parsed, _, fp = parse(schema_str)
        except Exception as exc:
            raise UnknownSchema(
                f"schema id {schema_id} is not a valid Avro schema ({type(exc).__name__})"
            ) from exc
        ref = f"id:{schema_id}"
        known = self._schemas.by_fingerprint(fp)
        if known is not None:
            writer = _Writer(known.event_type, known.parsed, ref)
        else:
            # Another version of one of our records (e.g. registered by a newer
            # producer): read it with its own schema, resolved to the current one.
            name = parsed.get("name") if isinstance(parsed, dict) else None
            event_type = self._schemas.event_type_of(str(name))
            if event_type is None:
                raise UnknownSchema(f"schema id {schema_id} is not an event schema of the contract")
            writer = _Writer(event_type, parsed, ref)
        self._by_id[schema_id] = writer
        return writer

    def _event(self, writer: _Writer, value: bytes, offset: int) -> Event:
        reader = self._schemas.current(writer.event_type).parsed
        body = io.BytesIO(value)
        body.seek(offset)
        try:
            data = schemaless_reader(
                body, writer.parsed, None if reader is writer.parsed else reader
            )
        except Exception as exc:  # fastavro raises EOFError, IndexError, ValueError, ...
            raise UndecodableRecord(
                f"the body is not valid Avro for {writer.event_type} ({writer.ref}): "
                f"{type(exc).__name__}"
            ) from exc
        if body.tell() != len(value):
            raise UndecodableRecord(
                f"{len(value) - body.tell()} bytes left over after the {writer.event_type} body"
            )
        if not isinstance(data, dict):
            raise UndecodableRecord(f"the body of {writer.event_type} is not a record")
        try:
            return from_avro(writer.event_type, data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '(event)'}: {error['type']}"
                for error in exc.errors(include_input=False, include_url=False)
            )
            raise InvalidEvent(f"{writer.event_type} breaks its model: {problems}") from None
