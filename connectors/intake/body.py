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
from streams.problems import Problem

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
    """The body as JSON: UTF-8, no NaN or Infinity, no repeated member names."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise malformed("the body is not UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=unique_pairs, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise malformed(f"the body is not JSON: {exc.msg} at position {exc.pos}") from None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise malformed(f"the body is not acceptable JSON: {reason}") from None
