"""Personal data in clear, sealed by the intake before anything is published.

An agency whose system cannot seal (no SDK, a plain HTTP client) may send
``personal_data`` as an object of named personal fields
(:class:`~schemas.personal.PersonalData`) and ``notes`` as text, in clear.
The intake seals each such value for the platform under the survivor's data
key, exactly as the SDK would (:mod:`connectors.sdk.keys`), so nothing in
clear ever reaches a topic. It does so only for a request that came over
TLS (the request's scheme is ``https``: the intake's own TLS, or a proxy on
the same host that says so in ``X-Forwarded-Proto``, which uvicorn trusts
from loopback only); over plain HTTP clear values are refused with 400,
since they may have crossed a network in clear.

The key comes with the key service's rules (:meth:`KeyService.for_sealing`:
the agencies of the case, or the first to ask for a new survivor; audited as
``data-key.seal``). The value sealed here gets a fresh nonce each time, so
a retry of the same request would look like another event to the
idempotency store: its fingerprint is taken from the document as sent,
keyed with the state folder's secret (:func:`connectors.idempotency.fingerprint`),
so that no plain hash of personal data is kept.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from connectors.auth import Principal, Role
from connectors.idempotency import fingerprint
from connectors.intake.keys import PLATFORM, KeyService
from connectors.intake.problems import ProblemError
from schemas.models import MODELS
from schemas.personal import PersonalData, PersonalDataError
from streams.cloudevents import sealed_fields
from streams.problems import FieldError, Problem
from streams.sealing import SealContext, seal

__all__ = ["ClearSealer", "is_clear"]

_PERSONAL_FIELD = "personal_data"


def is_clear(value: Any) -> bool:
    """Whether a sealed field's JSON holds a value in clear (not the sealed form)."""
    return value is not None and not (isinstance(value, dict) and "ciphertext" in value)


class ClearSealer:
    """Seals the clear values of a request's events (see the module)."""

    def __init__(self, keys: KeyService, *, fingerprint_key: bytes) -> None:
        self._keys = keys
        self._fingerprint_key = fingerprint_key

    async def seal(
        self, principal: Principal, documents: Sequence[Any], batch: bool, *, tls: bool
    ) -> tuple[list[Any], list[str | None]]:
        """The documents with their clear values sealed, and the fingerprint of each changed one.

        Documents without clear values pass unchanged (fingerprint None: the
        usual one). Anything this step cannot seal is left for the
        validation to refuse, except clear values it must refuse itself (no
        TLS, not the vocabulary): 400 naming every such field, never a value.
        """
        out: list[Any] = []
        digests: list[str | None] = []
        errors: list[FieldError] = []
        for index, document in enumerate(documents):
            pointer = f"/{index}" if batch else ""
            clear = self._clear_fields(principal, document)
            if not clear:
                out.append(document)
                digests.append(None)
                continue
            if not tls:
                errors.extend(
                    FieldError(
                        f"{pointer}/data/{name}",
                        "personal data in clear is accepted over TLS only; seal it first "
                        "(docs/keys.md) or send it over HTTPS",
                    )
                    for name in clear
                )
                out.append(document)
                digests.append(None)
                continue
            plaintexts, problems = _plaintexts(document["data"], clear, pointer)
            errors.extend(problems)
            if problems:
                out.append(document)
                digests.append(None)
                continue
            out.append(await self._sealed(principal, document, plaintexts))
            digests.append(fingerprint(principal.name, document, self._fingerprint_key))
        if errors:
            count = len(errors)
            detail = f"{count} problem{'s' if count != 1 else ''} with the request body; see errors"
            raise ProblemError(
                Problem(400, "invalid-event", "Invalid CloudEvent", detail, tuple(errors))
            )
        return out, digests

    @staticmethod
    def _clear_fields(principal: Principal, document: Any) -> list[str]:
        """The sealed fields of ``document`` given in clear, if this step is to seal them."""
        if principal.role is not Role.AGENCY or not isinstance(document, dict):
            return []  # not an agency's event: the validation refuses it as it is
        event_type, data = document.get("type"), document.get("data")
        if not isinstance(event_type, str) or event_type not in MODELS:
            return []
        if not isinstance(data, dict) or not _uuid(data.get("survivor_id")):
            return []
        return [name for name in sealed_fields(event_type) if is_clear(data.get(name))]

    async def _sealed(
        self, principal: Principal, document: dict[str, Any], plaintexts: dict[str, bytes]
    ) -> dict[str, Any]:
        survivor = UUID(document["data"]["survivor_id"])
        agency = principal.agency_id or ""
        key = await self._keys.for_sealing(principal, agency, survivor)
        sealed_document = copy.deepcopy(document)
        for name, plaintext in plaintexts.items():
            context = SealContext(survivor, document["type"], name, PLATFORM)
            value = seal(key, plaintext, context)
            sealed_document["data"][name] = {
                "ciphertext": base64.b64encode(value.ciphertext).decode(),
                "key_id": value.key_id,
                "algorithm": value.algorithm.value,
                "recipient": value.recipient,
            }
        return sealed_document


def _plaintexts(
    data: dict[str, Any], clear: list[str], pointer: str
) -> tuple[dict[str, bytes], list[FieldError]]:
    """What to seal for each clear field, or why it cannot be (never quoting the value)."""
    plaintexts: dict[str, bytes] = {}
    errors: list[FieldError] = []
    for name in clear:
        value, where = data[name], f"{pointer}/data/{name}"
        if name == _PERSONAL_FIELD:
            if not isinstance(value, dict):
                errors.append(FieldError(where, "must be an object of personal fields, or sealed"))
                continue
            try:
                plaintexts[name] = PersonalData.of(value).to_bytes()
            except PersonalDataError as exc:
                errors.append(FieldError(where, str(exc)))
        elif isinstance(value, str) and value:
            plaintexts[name] = value.encode()
        else:
            errors.append(FieldError(where, "must be non-empty text, or sealed"))
    return plaintexts, errors


def _uuid(value: Any) -> bool:
    try:
        UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)
