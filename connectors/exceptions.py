"""Errors of the connectors (intake API, SDKs, webhook delivery): one root, translated at the edge.

HTTP handlers turn them into problem+json answers; the delivery connector
into dead letters and escalations. Nothing here carries personal data.
"""

from __future__ import annotations

from schemas.exceptions import SafePassageError

__all__ = [
    "ApiKeysError",
    "BrokerUnavailableError",
    "ConnectorsError",
    "DirectoryClientError",
    "DirectoryError",
    "ForbiddenError",
    "FutureTimestampError",
    "HsdsImportError",
    "IdempotencyStoreError",
    "MalformedSignatureError",
    "MissingSignatureError",
    "SdkConsumeError",
    "SdkError",
    "SdkNotAddressedError",
    "SdkPublishError",
    "SdkRejectedError",
    "SdkRetriesExhaustedError",
    "SdkTransientError",
    "SdkValidationError",
    "SealedValueError",
    "SignatureError",
    "SignatureMismatchError",
    "StaleTimestampError",
    "WebhookConfigError",
    "WebhookDeliveryError",
    "WebhookError",
    "WebhookRejectedError",
    "WebhookUndeliverableError",
]


class ConnectorsError(SafePassageError):
    """Root of every error the connectors raise on purpose."""


# ---------------------------------------------------------------- intake API (issue 6)


class ApiKeysError(ConnectorsError):
    """The API keys file is missing, not YAML, or has an invalid entry.

    The message names the file and the entry's position, never a key or a
    key hash, so that it can be printed and logged.
    """


class SealedValueError(ConnectorsError):
    """A sealed value does not open for the platform under the survivor's data key.

    Clear text labelled as sealed, a value sealed for another survivor,
    event or field, or a key that does not exist (any more). The message
    names fields, never their content.
    """


class ForbiddenError(ConnectorsError):
    """An authenticated principal asked for something its role does not allow.

    ``location`` points at the part of the request that is not allowed (a
    JSON Pointer such as ``/data/provider_id``), or is None for the request
    as a whole.
    """

    def __init__(self, message: str, location: str | None = None) -> None:
        super().__init__(message)
        self.location = location


class BrokerUnavailableError(ConnectorsError):
    """Kafka did not acknowledge a record (down, timed out, queue full): retry later."""


class IdempotencyStoreError(ConnectorsError):
    """The idempotency store could not be read or written (disk full, corrupt file)."""


# --------------------------------------------------------------------------- SDKs (connectors.sdk)


class SdkError(ConnectorsError):
    """Root of every error of the agency and provider SDKs."""


class SdkValidationError(SdkError, ValueError):
    """The event breaks the contract; nothing was sent.

    ``errors`` lists each problem as ``{"loc": "field.path", "type": ..., "msg": ...}``
    without the offending values: they may be personal data, and SDK errors
    end up in callers' logs.
    """

    def __init__(self, message: str, errors: tuple[dict[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.errors = errors


class SdkNotAddressedError(SdkError, ValueError):
    """A provider tried to answer an offer made to another provider; nothing was sent."""


class SdkPublishError(SdkError):
    """Publishing failed; ``event_ids`` are the CloudEvents ids not known to be accepted.

    Publishing them again under the same ids is always safe: the platform
    drops a second copy of an id it has already seen.
    """

    def __init__(self, message: str, *, event_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.event_ids = event_ids


class SdkTransientError(SdkPublishError):
    """A failure that may go away by itself (timeout, broker or server busy): retried.

    ``retry_after`` is the server's Retry-After in seconds, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        event_ids: tuple[str, ...] = (),
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, event_ids=event_ids)
        self.retry_after = retry_after
        self.status = status


class SdkRejectedError(SdkPublishError):
    """The platform refused the event for good (invalid, unauthorised, conflicting): not retried.

    Over HTTP the attributes are those of the RFC 9457 problem document
    (``status``, ``title``, ``detail``, ``type``, ``errors``); over Kafka
    ``status`` is None and ``title`` is the broker's error name.
    """

    def __init__(
        self,
        message: str,
        *,
        event_ids: tuple[str, ...] = (),
        status: int | None = None,
        title: str = "",
        detail: str | None = None,
        type: str = "about:blank",
        errors: tuple[dict[str, object], ...] = (),
    ) -> None:
        super().__init__(message, event_ids=event_ids)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.errors = errors


class SdkRetriesExhaustedError(SdkPublishError):
    """Transient failures went on past the retry policy's budget (the last is ``__cause__``).

    The events may or may not have arrived: publish them again later under the same ids.
    """

    def __init__(self, message: str, *, event_ids: tuple[str, ...] = (), attempts: int) -> None:
        super().__init__(message, event_ids=event_ids)
        self.attempts = attempts


class SdkConsumeError(SdkError):
    """The provider SDK's consumer hit a fatal error and cannot go on."""


# ------------------------------------------------------------- webhook delivery (issue 6)
# connectors.webhooks (verification, which providers use too) and connectors.delivery.


class WebhookError(ConnectorsError):
    """Root of the errors of signed webhooks and their delivery."""


class WebhookConfigError(WebhookError):
    """The webhooks file is missing, unreadable, or has an invalid entry.

    The message names the file and the entry's path, never a URL or a
    secret, so that it can be printed and logged.
    """


class SignatureError(WebhookError):
    """A received webhook failed verification: answer 401/400 and do not act on it."""


class MissingSignatureError(SignatureError):
    """The request lacks ``webhook-id``, ``webhook-timestamp`` or ``webhook-signature``."""


class MalformedSignatureError(SignatureError):
    """The headers are there but garbled: not Unix seconds, not ``v1,<base64>`` signatures."""


class StaleTimestampError(SignatureError):
    """The signed timestamp is older than the tolerance: possibly a replayed request."""


class FutureTimestampError(SignatureError):
    """The signed timestamp is further ahead than the tolerance: a clock is wrong, or a forgery."""


class SignatureMismatchError(SignatureError):
    """No signature matches: the body was changed, or the secret is not the provider's."""


class WebhookDeliveryError(WebhookError):
    """A webhook could not be delivered; the record is dead-lettered and reported.

    The class name is the dead letter's reason and the message (statuses, error
    classes, counts, seconds; no URL, no body) goes into its headers.
    """


class WebhookRejectedError(WebhookDeliveryError):
    """The provider answered with a status that is not retried (a 4xx other than 429, a 3xx)."""


class WebhookUndeliverableError(WebhookDeliveryError):
    """No 2xx came back within the delivery horizon (timeouts, refused connections, 5xx, 429)."""


# ------------------------------------------------------------------ directory


class DirectoryError(ConnectorsError):
    """Root of the errors of the provider directory (its HSDS mapping, its client)."""


class HsdsImportError(DirectoryError):
    """An HSDS document cannot be imported; ``errors`` say where (JSON Pointer) and what.

    The whole import is refused: nothing of the document is published.
    """

    def __init__(self, errors: tuple[tuple[str, str], ...]) -> None:
        shown = "; ".join(f"{where or '/'}: {what}" for where, what in errors[:10])
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__(f"the HSDS document cannot be imported: {shown}{more}")
        self.errors = errors


class DirectoryClientError(DirectoryError):
    """The intake refused a directory request, or could not be reached (the CLI's one line)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
