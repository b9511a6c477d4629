"""The API's published description: response models and the OpenAPI document.

The models here are the documented shapes of the answers (``Receipt`` also
builds the receipts the service returns; a status read answers
:class:`processors.status.StatusView`); the helpers add what FastAPI
cannot derive from the routes: problem+json responses, the two CloudEvents
request media types and one CloudEvent schema per accepted event type,
generated from the same models the intake validates with.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from connectors.directory.entries import (
    CapacityFigure,
    EntryFields,
    ImportReport,
    NewProvider,
    ProviderView,
)
from connectors.intake.cloudevents import PUBLISHABLE
from processors.status import StatusView
from schemas.models import MODELS
from streams.cloudevents import BATCH_MEDIA_TYPE, STRUCTURED_MEDIA_TYPE, documented_model
from streams.problems import PROBLEM_MEDIA_TYPE

__all__ = [
    "DESCRIPTION",
    "BatchReceipt",
    "FieldProblem",
    "Health",
    "IssuedDataKey",
    "ProblemDetails",
    "Receipt",
    "SealedDisclosure",
    "install_openapi",
    "json_response",
    "problem_responses",
    "request_body_docs",
]


class FieldProblem(BaseModel):
    """One field-level problem."""

    location: str = Field(description="JSON Pointer into the request body, e.g. /data/age_group.")
    message: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem document."""

    type: str = Field(description="urn:safepassage:problem:<slug>; see the API docs.")
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


class Receipt(BaseModel):
    """Where an accepted event was written; the same again for a retry."""

    id: str
    source: str
    type: str
    topic: str
    partition: int
    offset: int


class BatchReceipt(BaseModel):
    """One receipt per event of a batch, in the order of the batch."""

    accepted: list[Receipt]


class IssuedDataKey(BaseModel):
    """A survivor's data key, to seal personal data for the platform (AES-256-GCM)."""

    survivor_id: str
    key_id: str = Field(description="Names the key in every value sealed with it.")
    algorithm: Literal["AES_256_GCM"]
    recipient: Literal["platform"] = Field(description="The recipient sealed values name.")
    key: str = Field(description="256-bit key, standard base64. Keep it in memory only.")
    created: bool = Field(description="Whether this call made the key.")


class SealedDisclosure(BaseModel):
    """What one provider may know for one referral, sealed to the public key it sent (HPKE)."""

    survivor_id: str
    referral_id: str
    provider_id: str
    category: str
    suite: Literal["HPKE-base/DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM"] = Field(
        description="RFC 9180 base mode; info binds survivor, referral and provider."
    )
    fields: list[str] = Field(description="The personal fields inside (names only).")
    notes: bool = Field(description="Whether the referral's notes are inside.")
    sealed: str = Field(
        description='Standard base64 of enc || ciphertext; opens to {"personal_data": '
        '{field: text}, "notes": text or null} with the private key only.'
    )


class Health(BaseModel):
    """Whether the service can reach Kafka."""

    status: Literal["ok"]
    broker: Literal["reachable"]


_RESPONSE_DOCS: dict[int, str] = {
    400: "Malformed JSON or invalid event(s); errors locate each problem.",
    401: "Missing or invalid API key.",
    403: "The principal's role does not allow this.",
    409: "The source and id were used for another event, or it is being published.",
    413: "Body larger than the limit.",
    415: "Not a CloudEvents structured or batch media type.",
    429: "Too many events in flight; retry after Retry-After seconds.",
    503: "Kafka (or the router) is unavailable; nothing was accepted that was not acknowledged.",
}


def json_response(description: str, *models: str) -> dict[str, Any]:
    """A JSON answer whose schema is one of the ``models`` (components by name)."""
    refs = [{"$ref": f"#/components/schemas/{model}"} for model in models]
    schema = refs[0] if len(refs) == 1 else {"oneOf": refs}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    schema = {"$ref": "#/components/schemas/ProblemDetails"}
    return {
        status: {
            "description": _RESPONSE_DOCS[status],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
        }
        for status in statuses
    }


def request_body_docs(max_batch_items: int) -> dict[str, Any]:
    event_schema = {"$ref": "#/components/schemas/CloudEvent"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                STRUCTURED_MEDIA_TYPE: {"schema": event_schema},
                BATCH_MEDIA_TYPE: {
                    "schema": {"type": "array", "items": event_schema, "maxItems": max_batch_items}
                },
            },
        }
    }


def _component_schemas() -> dict[str, Any]:
    """JSON Schemas of the documented models and of one CloudEvent per accepted type."""
    envelopes = {
        event_type: documented_model(event_type, MODELS[event_type])
        for event_type in sorted(PUBLISHABLE)
    }
    models: list[type[BaseModel]] = [
        ProblemDetails,
        Receipt,
        BatchReceipt,
        Health,
        StatusView,
        IssuedDataKey,
        NewProvider,
        EntryFields,
        CapacityFigure,
        ProviderView,
        ImportReport,
    ]
    _, document = models_json_schema(
        [(model, "validation") for model in [*models, *envelopes.values()]],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = document["$defs"]
    schemas["CloudEvent"] = {
        "description": "A CloudEvent the intake accepts; data is the event model of its type.",
        "oneOf": [{"$ref": f"#/components/schemas/{m.__name__}"} for m in envelopes.values()],
        "discriminator": {
            "propertyName": "type",
            "mapping": {t: f"#/components/schemas/{m.__name__}" for t, m in envelopes.items()},
        },
    }
    sealed = schemas.get("Sealed")
    if sealed is not None:
        sealed["properties"]["ciphertext"] = {
            "type": "string",
            "contentEncoding": "base64",
            "description": "The sealed bytes, base64 (RFC 4648, padded).",
        }
    return schemas


DESCRIPTION = """\
Agencies and providers publish CloudEvents 1.0 (HTTP binding, structured and
batch content modes) to SafePassage. A 202 answer means every event is on
Kafka, acknowledged by all in-sync replicas. Retrying with the same
CloudEvents `source` and `id` is safe: the event is published once and the
retry gets the same receipt. Errors are RFC 9457 problem documents. See
docs/intake-api.md for roles, the error catalogue and examples.
"""


def install_openapi(app: FastAPI) -> None:
    """/openapi.json with the CloudEvent, receipt and problem schemas the routes refer to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                _component_schemas()
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
