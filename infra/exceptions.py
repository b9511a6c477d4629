"""Errors of the local infrastructure, each with a message a person can act on."""

from schemas.exceptions import SafePassageError


class InfraError(SafePassageError):
    """Root of every error raised by :mod:`infra`."""


class ToolMissingError(InfraError):
    """Java or Maven is not installed or not on the PATH."""


class DependencyResolutionError(InfraError):
    """Maven could not resolve the broker's jars (offline, or Maven Central unreachable)."""


class BrokerStartError(InfraError):
    """A broker node did not come up, or did not answer a metadata request in time."""


class BrokerStopError(InfraError):
    """A broker node did not stop, even after SIGKILL."""


class RegistryBuildError(DependencyResolutionError):
    """Maven could not build the schema registry (Maven Central unreachable, or build failed)."""


class RegistryStartError(InfraError):
    """The schema registry did not come up, or did not answer in time."""


class RegistryStopError(InfraError):
    """The schema registry did not stop, even after SIGKILL."""
