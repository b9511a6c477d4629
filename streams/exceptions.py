"""Errors of the Kafka plumbing layer."""


class StreamsError(Exception):
    """Root of every error raised by :mod:`streams`."""


class ProvisioningError(StreamsError):
    """Topics could not be created or described on the cluster."""
