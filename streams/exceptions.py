"""Errors of the Kafka plumbing layer."""

from schemas.exceptions import SafePassageError

__all__ = [
    "CodecError",
    "DecodeError",
    "EncodeError",
    "InvalidEvent",
    "InvalidHeader",
    "KeyMismatch",
    "MissingHeader",
    "OversizedRecord",
    "ProvisioningError",
    "RecordRejected",
    "RegistryUnavailableError",
    "SettingsError",
    "StreamsError",
    "UndecodableRecord",
    "UnknownSchema",
    "UnknownTopicError",
    "WrongEventType",
]


class StreamsError(SafePassageError):
    """Root of every error raised by :mod:`streams`."""


class ProvisioningError(StreamsError):
    """Topics could not be created or described on the cluster."""


class CodecError(StreamsError):
    """An event could not be encoded or a record decoded (see the subclasses).

    Messages never name field values: they end up in logs and dead-letter headers.
    """


class UnknownTopicError(CodecError):
    """The topic carries no events of the contract: a configuration error, not a bad record."""


class EncodeError(CodecError):
    """An event cannot be written to the given topic (not allowed there, no key, too large)."""


class RegistryUnavailableError(CodecError):
    """The schema registry did not answer; retry later, do not dead-letter the record."""


class DecodeError(CodecError):
    """A record that cannot become a typed event; the consumer dead-letters it and goes on.

    The subclasses have no ``Error`` suffix: a class name is the reason a dead
    letter's ``deadletter.error.class`` header gives (``UnknownSchema``).
    """


class UndecodableRecord(DecodeError):  # noqa: N818
    """The value is empty, not framed as the contract says, or not valid Avro for its schema."""


class UnknownSchema(DecodeError):  # noqa: N818
    """The record names a schema fingerprint or schema-registry id the contract does not know."""


class WrongEventType(DecodeError):  # noqa: N818
    """Valid Avro, but not allowed on this topic, or its schema disagrees with ``ce_type``."""


class MissingHeader(DecodeError):  # noqa: N818
    """A required CloudEvents header (or ``content-type``) is absent."""


class InvalidHeader(DecodeError):  # noqa: N818
    """A header is present but malformed, repeated, or contradicts the event."""


class InvalidEvent(DecodeError):  # noqa: N818
    """Valid Avro that breaks a rule of the model the schema cannot express (pattern, bound)."""


class KeyMismatch(DecodeError):  # noqa: N818
    """The Kafka key is not the key the contract derives for this event on this topic."""


class OversizedRecord(DecodeError):  # noqa: N818
    """The value is larger than the configured maximum."""


class RecordRejected(StreamsError):  # noqa: N818 - the class name is the dead-letter reason
    """A well-formed record the domain refused (illegal transition, unknown referral...).

    The message names statuses, event types and ids only.
    """


class SettingsError(StreamsError):
    """A setting from the environment is invalid (the message names variables, not values)."""
