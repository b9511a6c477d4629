"""Reading a request into CloudEvent documents: the cheap transport checks, first.

The media type (415), the body's size, declared or as it streams in (413),
and strict JSON (400: UTF-8, no NaN or Infinity, no repeated member names,
which would make an event ambiguous).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from connectors.intake.problems import ProblemError, malformed
from connectors.intake.settings import IntakeSettings
from processors.unique_keys import unique_pairs
from streams.cloudevents import BATCH_MEDIA_TYPE, STRUCTURED_MEDIA_TYPE
from streams.problems import FieldError, Problem

__all__ = ["parse_json", "read_body", "read_documents"]


async def read_documents(request: Request, settings: IntakeSettings) -> tuple[list[Any], bool]:
    """The CloudEvent documents of a request and whether it was a batch (415/413/400 else)."""
    media_type = _media_type(request)
    body = await read_body(request, settings.max_body_bytes)
    document = parse_json(body)
    if media_type != BATCH_MEDIA_TYPE:
        if not isinstance(document, dict):
            raise malformed("a structured CloudEvent must be a JSON object")
        return [document], False
    if not isinstance(document, list):
        raise malformed("a batch must be a JSON array of CloudEvents")
    if len(document) > settings.max_batch_items:
        detail = f"a batch holds at most {settings.max_batch_items} events"
        raise ProblemError(Problem(413, "payload-too-large", "Batch too large", detail))
    return document, True


def _media_type(request: Request) -> str:
    """The request's media type if the intake takes it; 415 otherwise."""
    media_type, _, parameters = request.headers.get("content-type", "").partition(";")
    media_type = media_type.strip().lower()
    accepted = f"{STRUCTURED_MEDIA_TYPE}, {BATCH_MEDIA_TYPE}"
    if media_type not in {STRUCTURED_MEDIA_TYPE, BATCH_MEDIA_TYPE}:
        shown = media_type[:80] or "none"
        if media_type == "application/json":
            shown += " (binary content mode is not supported)"
        detail = f"Content-Type {shown}; send {accepted}"
    elif any(
        name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8"
        for name, _, value in (parameter.partition("=") for parameter in parameters.split(";"))
    ):
        detail = "only charset=utf-8 is accepted"
    else:
        return media_type
    raise ProblemError(
        Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
            headers={"Accept-Post": accepted},
        )
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes by Content-Length or as it streams in."""
    detail = f"the body must not exceed {limit} bytes"
    too_large = ProblemError(Problem(413, "payload-too-large", "Request body too large", detail))
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise malformed("Content-Length is not a number") from None
        if length > limit:
            raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """The body as JSON: UTF-8, no NaN or Infinity, no repeated member names, no lone surrogate.

    JSON lets a string escape half of a UTF-16 pair (``"\\ud800"``); Python
    reads it into a ``str`` that no UTF-8 encoder takes, so it would fail
    wherever the value goes next (Avro, Kafka, an answer that names it) as a
    500. It is refused here, once, for every route.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise malformed("the body is not UTF-8") from None
    try:
        document = json.loads(text, object_pairs_hook=unique_pairs, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise malformed(f"the body is not JSON: {exc.msg} at position {exc.pos}") from None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise malformed(f"the body is not acceptable JSON: {reason}") from None
    where = _lone_surrogate(document)
    if where is not None:
        raise ProblemError(
            Problem(
                400,
                "malformed-request",
                "Malformed request",
                "a string escapes half of a UTF-16 surrogate pair: not Unicode text",
                (FieldError(where, "not Unicode text (a lone surrogate escape)"),),
            )
        )
    return document


def _lone_surrogate(document: Any) -> str | None:
    """The JSON Pointer of the first string (or member name) with a lone surrogate, else None."""
    pending: list[tuple[str, Any]] = [("", document)]
    while pending:
        pointer, value = pending.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return pointer
        elif isinstance(value, dict):
            for name, item in value.items():
                escaped = name.replace("~", "~0").replace("/", "~1")
                if not _encodable(name):
                    return pointer or "/"
                pending.append((f"{pointer}/{escaped}", item))
        elif isinstance(value, list):
            pending.extend((f"{pointer}/{index}", item) for index, item in enumerate(value))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
