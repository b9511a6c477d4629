"""Errors of the event contract, each with a message a person can act on."""

__all__ = ["SchemaLoadError", "SchemasError", "UnknownEventTypeError"]


class SchemasError(Exception):
    """Root of every error raised by :mod:`schemas`."""


class SchemaLoadError(SchemasError):
    """An ``.avsc`` file is missing, not JSON, or not a valid Avro schema.

    This is a defect of the installed package, not of any record: it is
    raised when the schemas are first loaded, never while decoding.
    """


class UnknownEventTypeError(SchemasError, LookupError):
    """An event type that the contract does not define."""
