"""The SDKs' HTTP transport: POST CloudEvents to the intake API, and read its answers.

For callers outside the platform's network. This module owns the request (one
event or a batch, in the JSON of :mod:`streams.cloudevents`) and what an
answer means: 2xx accepted; a "not now" (:data:`TRANSIENT_STATUSES`, the intake
API's 409 *in progress*, a failed connection) retried by
:class:`~connectors.sdk.retry.RetryPolicy`; anything else an
:class:`~connectors.exceptions.SdkRejectedError` from the RFC 9457 problem document.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import httpx
from pydantic import SecretStr

from connectors.exceptions import (
    SdkRejectedError,
    SdkRetriesExhaustedError,
    SdkTransientError,
    SdkValidationError,
)
from connectors.sdk.events import check_event_id
from connectors.sdk.retry import RetryPolicy
from connectors.sdk.transport import Closing, Outgoing
from schemas.models import Event
from streams.cloudevents import BATCH_MEDIA_TYPE, STRUCTURED_MEDIA_TYPE, batch, structured
from streams.exceptions import EncodeError
from streams.problems import PROBLEM_MEDIA_TYPE, problem_type
from streams.retry import TRANSIENT_HTTP_ERRORS, parse_retry_after

__all__ = [
    "EVENTS_PATH",
    "IN_PROGRESS_PROBLEM",
    "TRANSIENT_STATUSES",
    "HttpTransport",
    "rejected_from_response",
]

EVENTS_PATH = "/v1/events"

TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
"""HTTP answers that say "not now" rather than "not this": retried.

Any other non-2xx answer would come again for the same request, so it is
permanent, except the intake API's 409 *in progress* (:func:`_in_progress`).
"""


def _structured(item: Outgoing) -> bytes:
    """The structured CloudEvent of one event, or :class:`SdkValidationError` (nothing is sent)."""
    check_event_id(item.event_id)
    try:
        return structured(item.event, event_id=item.event_id, source=item.source)
    except EncodeError as exc:
        raise SdkValidationError(str(exc)) from exc


def _problem(response: httpx.Response) -> dict[str, Any]:
    """The problem+json members of an error answer ({} when the body is not one)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def rejected_from_response(
    response: httpx.Response, event_ids: tuple[str, ...]
) -> SdkRejectedError:
    """The typed error of a permanent HTTP failure, from its RFC 9457 problem document."""
    problem = _problem(response)
    status, errors = problem.get("status"), problem.get("errors")
    title = _text(problem, "title") or response.reason_phrase
    detail = _text(problem, "detail")
    message = f"{response.status_code} {title}" + (f": {detail}" if detail else "")
    return SdkRejectedError(
        message,
        event_ids=event_ids,
        status=status if isinstance(status, int) else response.status_code,
        title=title,
        detail=detail,
        type=_text(problem, "type") or "about:blank",
        errors=tuple(e for e in errors if isinstance(e, dict)) if isinstance(errors, list) else (),
    )


def _text(problem: Mapping[str, Any], member: str) -> str | None:
    value = problem.get(member)
    return value if isinstance(value, str) else None


IN_PROGRESS_PROBLEM = problem_type("in-progress")
"""The intake API's 409 while another request publishes the same (source, id)."""


def _in_progress(response: httpx.Response, problem: Mapping[str, Any]) -> bool:
    """A 409 that means "being published right now, ask again", not "this id is taken".

    The intake API answers a concurrent retry of the same event with 409,
    problem type :data:`IN_PROGRESS_PROBLEM` and a ``Retry-After``; a 409 for
    an id used with other content has neither and is permanent.
    """
    if response.status_code != 409:
        return False
    return problem.get("type") == IN_PROGRESS_PROBLEM or "Retry-After" in response.headers


class HttpTransport(Closing):
    """Publishes events to ``<base_url>/v1/events`` as CloudEvents 1.0 structured-mode JSON.

    The API key (``Authorization: Bearer``) tells the intake API which role
    may publish what. 202 means accepted: written to Kafka, or a copy of an
    id already written.
    """

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | str,
        *,
        retry: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        batch_size: int = 100,
        http_transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """Open a connection pool to ``base_url``; ``http_transport`` stands in for the network.

        ``timeout_s`` bounds connecting, sending and reading each attempt;
        ``batch_size`` is the most events one batch request carries;
        ``verify`` is what the intake's certificate is checked against (the
        system's trust store, or an ``ssl.create_default_context(cafile=...)``
        for a private CA such as the local one of ``make run``).
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not key.get_secret_value():
            raise ValueError("api_key must not be empty")
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self._client = httpx.Client(
            base_url=base_url,
            timeout=timeout_s,
            transport=http_transport,
            verify=verify,
            headers={
                "Authorization": f"Bearer {key.get_secret_value()}",
                "Accept": f"{PROBLEM_MEDIA_TYPE}, application/json",
            },
        )

    def publish(self, event: Event, *, event_id: str, source: str) -> str:
        """POST one event; its CloudEvents id once the intake API answered 202."""
        self._send(
            _structured(Outgoing(event, event_id, source)), STRUCTURED_MEDIA_TYPE, (event_id,)
        )
        return event_id

    async def publish_async(self, event: Event, *, event_id: str, source: str) -> str:
        """:meth:`publish` in a worker thread (``httpx.Client`` is thread-safe)."""
        return await asyncio.to_thread(self.publish, event, event_id=event_id, source=source)

    def publish_many(self, items: Sequence[Outgoing]) -> list[str]:
        """POST events in batches of :attr:`batch_size`, in order; their ids.

        Every event is converted (and so validated) before the first request.
        Batches are not atomic with each other: when one fails, the error's
        ``event_ids`` are those of that batch and every later one; earlier
        batches were accepted. Publishing all of them again is safe.
        """
        documents = [_structured(item) for item in items]
        all_ids = [item.event_id for item in items]
        for start in range(0, len(documents), self.batch_size):
            body = batch(documents[start : start + self.batch_size])
            ids = tuple(all_ids[start : start + self.batch_size])
            try:
                self._send(body, BATCH_MEDIA_TYPE, ids)
            except (SdkRejectedError, SdkRetriesExhaustedError) as exc:
                exc.event_ids = tuple(all_ids[start:])
                raise
        return all_ids

    def data_key(self, survivor_id: UUID) -> dict[str, Any]:
        """The answer of the intake's key service for ``survivor_id`` (:mod:`connectors.sdk.keys`).

        Retried like a publish; a 404 (not this agency's survivor) or a 410
        (erased) is an :class:`SdkRejectedError`.
        """
        path = f"/v1/survivors/{survivor_id}/data-key"
        answers: list[dict[str, Any]] = []
        self.retry.run(lambda: answers.append(self._post(b"", None, (), path).json()), event_ids=())
        return answers[-1]

    def disclosure(self, survivor_id: UUID, referral_id: UUID, public_key: str) -> dict[str, Any]:
        """The intake's sealed disclosure of a referral for the calling provider.

        Retried like a publish; a refusal (404 not offered, 409 the offer or
        consent no longer stands, 410 erased) is an :class:`SdkRejectedError`.
        """
        path = f"/v1/survivors/{survivor_id}/referrals/{referral_id}/disclosure"
        body = json.dumps({"public_key": public_key}).encode()
        answers: list[dict[str, Any]] = []
        self.retry.run(
            lambda: answers.append(self._post(body, "application/json", (), path).json()),
            event_ids=(),
        )
        return answers[-1]

    def _send(self, body: bytes, content_type: str, ids: tuple[str, ...]) -> None:
        self.retry.run(functools.partial(self._post, body, content_type, ids), event_ids=ids)

    def _post(
        self, body: bytes, content_type: str | None, ids: tuple[str, ...], path: str = EVENTS_PATH
    ) -> httpx.Response:
        """One attempt: 2xx returns; transient failures and permanent ones raise typed errors."""
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            response = self._client.post(path, content=body, headers=headers)
        except TRANSIENT_HTTP_ERRORS as exc:
            raise SdkTransientError(
                f"no answer from the intake API ({type(exc).__name__})", event_ids=ids
            ) from exc
        except httpx.HTTPError as exc:
            raise SdkRejectedError(
                f"the request could not be made ({type(exc).__name__})",
                event_ids=ids,
                title=type(exc).__name__,
            ) from exc
        if response.is_success:
            return response
        problem = _problem(response)
        if response.status_code in TRANSIENT_STATUSES or _in_progress(response, problem):
            title = problem.get("title") or response.reason_phrase
            raise SdkTransientError(
                f"{response.status_code} {title}",
                event_ids=ids,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                status=response.status_code,
            )
        raise rejected_from_response(response, ids)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
