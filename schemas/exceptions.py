"""Errors of the event contract, and the root of every error SafePassage raises.

:class:`SafePassageError` lives here because ``schemas`` is the bottom layer:
every other package (``streams``, ``processors``, ``connectors``, ``infra``)
may import it, and the pure core already does (tests/unit/test_layering.py).
"""

__all__ = ["SafePassageError", "SchemaLoadError", "SchemasError", "UnknownEventTypeError"]


class SafePassageError(Exception):
    """Root of every error SafePassage raises on purpose; the five package roots derive from it.

    Messages never carry personal data: they name event types, topics,
    statuses, ids, field paths, files and settings, never a field's value.
    That is what lets the edges show them as they are: dead-letter headers
    (:func:`streams.deadletter.describe_error`), log lines, and the one-line
    errors of the command line. The message of any other exception (a
    library's, a bug's) may repeat a value, so it is withheld there.
    """

    def one_line(self) -> str:
        """The message on one line, for a command line's error or a log field.

        Some messages list several problems or quote a parser's report over
        several lines; an operator's terminal and a log line want one.
        """
        return " ".join(str(self).split()) or type(self).__name__


class SchemasError(SafePassageError):
    """Root of every error raised by :mod:`schemas`."""


class SchemaLoadError(SchemasError):
    """An ``.avsc`` file is missing, not JSON, or not a valid Avro schema.

    This is a defect of the installed package, not of any record: it is
    raised when the schemas are first loaded, never while decoding.
    """


class UnknownEventTypeError(SchemasError, LookupError):
    """An event type that the contract does not define."""
