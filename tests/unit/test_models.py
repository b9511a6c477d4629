"""The pydantic models: in step with the .avsc files, strict, and exact round trips."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import Annotated, Any, get_args, get_origin, get_type_hints
from uuid import UUID, uuid4

import annotated_types
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AfterValidator, BaseModel, StringConstraints, ValidationError

from schemas.exceptions import UnknownEventTypeError
from schemas.models import (
    MODELS,
    CaseClosed,
    Event,
    ProviderCapacity,
    ProviderRegistered,
    ReferralOffered,
    SurvivorIdentified,
    from_avro,
    model_for,
    to_avro,
)
from schemas.registry import event_schemas
from schemas.types import (
    INT32_MAX,
    AgeBand,
    AgeGroup,
    CaseOutcome,
    Gender,
    SealAlgorithm,
    Sealed,
    ServiceCategory,
    Urgency,
    utc_millis,
)
from streams.topics import CATEGORIES

from .test_schemas import EVENT_TYPES

PRIMITIVES: dict[str, type] = {
    "string": str,
    "boolean": bool,
    "int": int,
    "long": int,
    "double": float,
    "bytes": bytes,
}
INT_RANGE = {"int": (-(2**31), INT32_MAX), "long": (-(2**63), 2**63 - 1)}


def split_optional(hint: Any) -> tuple[Any, bool]:
    if get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        assert len(args) == 1, f"only X | None unions are mapped to Avro: {hint}"
        return args[0], True
    return hint, False


def split_annotated(hint: Any) -> tuple[Any, list[Any]]:
    if get_origin(hint) is Annotated:
        base, *meta = get_args(hint)
        return base, meta
    return hint, []


class MismatchError(AssertionError):
    """The model and the .avsc disagree."""


def agree_primitive(kind: str, base: Any, meta: list[Any], path: str) -> None:
    assert base is PRIMITIVES[kind], f"{path}: {kind} in Avro, {base} in the model"
    if kind == "string":
        assert any(isinstance(m, StringConstraints) and m.pattern for m in meta), (
            f"{path}: clear strings must be constrained codes"
        )
    if kind in INT_RANGE:
        low, high = INT_RANGE[kind]
        ge = [m.ge for m in meta if isinstance(m, annotated_types.Ge)]
        le = [m.le for m in meta if isinstance(m, annotated_types.Le)]
        assert ge and le and low <= ge[0] and le[0] <= high, f"{path}: unbounded {kind}"


def agree(avro: Any, hint: Any, path: str, named: dict[str, Any]) -> None:
    """Assert that an Avro type and a model annotation describe the same values."""
    inner_hint, optional = split_optional(hint)
    if isinstance(avro, list):
        if not (len(avro) == 2 and avro[0] == "null") or not optional:
            raise MismatchError(f"{path}: nullable in Avro, not in the model (or a wider union)")
        agree(avro[1], inner_hint, path, named)
        return
    if optional:
        raise MismatchError(f"{path}: nullable in the model, not in Avro")
    if isinstance(avro, str):
        avro = named.get(avro, {"type": avro})
    base, meta = split_annotated(hint)
    kind, logical = avro["type"], avro.get("logicalType")
    if logical == "uuid":
        assert base is UUID, f"{path}: uuid in Avro, {base} in the model"
    elif logical == "timestamp-millis":
        assert base is datetime, f"{path}: timestamp-millis in Avro, {base} in the model"
        validators = [m.func for m in meta if isinstance(m, AfterValidator)]
        assert utc_millis in validators, f"{path}: not a UtcDatetime"
    elif kind in PRIMITIVES:
        agree_primitive(kind, base, meta, path)
    elif kind == "enum":
        named[avro["name"]] = avro
        assert isinstance(base, type) and issubclass(base, Enum), f"{path}: not an enum"
        assert base.__name__ == avro["name"], f"{path}: enum {base.__name__} vs {avro['name']}"
        assert [m.value for m in base] == avro["symbols"], f"{path}: symbols differ"
    elif kind == "array":
        assert get_origin(base) is tuple, f"{path}: arrays are tuples in the model"
        item, ellipsis = get_args(base)
        assert ellipsis is Ellipsis
        agree(avro["items"], item, f"{path}[]", named)
    elif kind == "record":
        named[avro["name"]] = avro
        agree_record(avro, base, path, named)
    else:  # pragma: no cover - a new Avro construct needs a mapping here first
        raise MismatchError(f"{path}: no mapping for Avro type {kind}")


def agree_record(avro: dict[str, Any], model: Any, path: str, named: dict[str, Any]) -> None:
    assert isinstance(model, type) and issubclass(model, BaseModel), f"{path}: not a model"
    assert model.__name__ == avro["name"], f"{path}: record {model.__name__} vs {avro['name']}"
    avro_fields = {field["name"]: field for field in avro["fields"]}
    assert set(avro_fields) == set(model.model_fields), f"{path}: field names differ"
    hints = get_type_hints(model, include_extras=True)
    for name, field in avro_fields.items():
        agree(field["type"], hints[name], f"{path}.{name}", named)
        info = model.model_fields[name]
        if "default" in field:
            assert info.default == field["default"], f"{path}.{name}: defaults differ"
        else:
            assert info.is_required(), f"{path}.{name}: has a default only in the model"


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_model_and_avsc_are_in_step(event_type: str) -> None:
    model = model_for(event_type)
    avsc = json.loads(model.avsc_path().read_text())
    agree_record(avsc, model, event_type, {})
    assert model.event_type == event_type
    assert model.avro_name() == event_schemas().current(event_type).full_name


def test_the_checker_notices_a_difference() -> None:
    avsc = json.loads(CaseClosed.avsc_path().read_text())
    avsc["fields"][-1]["type"]["symbols"].append("ADOPTED")
    with pytest.raises(AssertionError, match="symbols differ"):
        agree_record(avsc, CaseClosed, "case.closed", {})
    avsc = json.loads(CaseClosed.avsc_path().read_text())
    avsc["fields"][0]["type"] = ["null", avsc["fields"][0]["type"]]
    with pytest.raises(MismatchError, match="nullable in Avro"):
        agree_record(avsc, CaseClosed, "case.closed", {})


def test_registry_maps_every_event_type() -> None:
    assert tuple(MODELS) == EVENT_TYPES
    for event_type, model in MODELS.items():
        assert model_for(event_type) is model
    with pytest.raises(UnknownEventTypeError, match="unknown event type"):
        model_for("survivor.renamed")


@pytest.mark.parametrize("model", list(MODELS.values()), ids=list(MODELS))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_to_avro_from_avro_round_trip(
    model: type[Event], data: st.DataObject, events: Callable[[type[Event]], Any]
) -> None:
    event = data.draw(events(model))
    plain = to_avro(event)
    assert set(plain) == set(model.model_fields)
    assert from_avro(model.event_type, plain) == event


# ---------------------------------------------------------------------- builders

T0 = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


def case_closed(**overrides: Any) -> CaseClosed:
    values: dict[str, Any] = {
        "survivor_id": uuid4(),
        "occurred_at": T0,
        "agency_id": "nl-police",
        "outcome": CaseOutcome.SUPPORT_COMPLETED,
    }
    return CaseClosed(**(values | overrides))


def identified(**overrides: Any) -> SurvivorIdentified:
    values: dict[str, Any] = {
        "survivor_id": uuid4(),
        "occurred_at": T0,
        "agency_id": "nl-police",
        "jurisdiction": "NL",
        "age_group": AgeGroup.ADULT,
        "languages": ("ro",),
        "gender": Gender.FEMALE,
    }
    return SurvivorIdentified(**(values | overrides))


# ---------------------------------------------------------------------- times


def test_times_are_truncated_to_milliseconds_in_utc() -> None:
    cet = timezone(timedelta(hours=1))
    event = case_closed(occurred_at=datetime(2025, 1, 1, 1, 0, 0, 123999, tzinfo=cet))
    assert event.occurred_at == datetime(2025, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        case_closed(occurred_at=datetime(2025, 1, 1))


def test_times_that_leave_the_calendar_in_utc_are_refused() -> None:
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    with pytest.raises(ValidationError, match="representable"):
        case_closed(occurred_at=early)


def test_nested_times_are_normalised_too() -> None:
    deadline = datetime(2025, 1, 1, 12, 0, 0, 999999, tzinfo=timezone(timedelta(hours=-5)))
    offer = ReferralOffered(
        survivor_id=uuid4(),
        occurred_at=T0,
        referral_id=uuid4(),
        provider_id=uuid4(),
        category=ServiceCategory.HOUSING,
        urgency=Urgency.EMERGENCY,
        score=0.5,
        reasons=("language:ro",),
        attempt=1,
        deadline=deadline,
    )
    assert offer.deadline == datetime(2025, 1, 1, 17, 0, 0, 999000, tzinfo=UTC)


# ---------------------------------------------------------------------- strictness


def test_events_are_frozen_and_forbid_unknown_fields() -> None:
    event = case_closed()
    with pytest.raises(ValidationError):
        event.agency_id = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs"):
        case_closed(name="Maria")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("jurisdiction", "nl"),
        ("jurisdiction", "NLD"),
        ("jurisdiction", "NL\n"),
        ("jurisdiction", "DE-BERLIN"),
        ("languages", ("Romanian",)),
        ("languages", ("RO",)),
        ("agency_id", "Maria Lopez"),
        ("agency_id", ""),
        ("agency_id", "a" * 129),
    ],
)
def test_codes_cannot_carry_free_text(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        identified(**{field: value})


@pytest.mark.parametrize("code", ["NL", "DE-BE", "GB-ENG", "FR-75C"])
def test_jurisdictions_accept_iso_3166(code: str) -> None:
    assert identified(jurisdiction=code).jurisdiction == code


@pytest.mark.parametrize(
    ("group", "band", "ok"),
    [
        (AgeGroup.MINOR, AgeBand.FROM_16_TO_17, True),
        (AgeGroup.MINOR, AgeBand.FROM_18_TO_24, False),
        (AgeGroup.ADULT, AgeBand.UNDER_12, False),
        (AgeGroup.ADULT, AgeBand.FROM_65, True),
        (AgeGroup.UNKNOWN, AgeBand.FROM_16_TO_17, True),
        (AgeGroup.ADULT, AgeBand.UNKNOWN, True),
        (AgeGroup.MINOR, None, True),
    ],
)
def test_age_band_must_lie_in_age_group(group: AgeGroup, band: AgeBand | None, ok: bool) -> None:
    if ok:
        assert identified(age_group=group, age_band=band).age_band is band
    else:
        with pytest.raises(ValidationError, match="age_band"):
            identified(age_group=group, age_band=band)


def test_capacity_cannot_exceed_total() -> None:
    values: dict[str, Any] = {
        "provider_id": uuid4(),
        "occurred_at": T0,
        "category": ServiceCategory.HEALTH,
        "total": 3,
    }
    assert ProviderCapacity(**values, available=3).available == 3
    with pytest.raises(ValidationError, match="exceeds"):
        ProviderCapacity(**values, available=4)
    with pytest.raises(ValidationError):
        ProviderCapacity(**(values | {"total": 2**31}), available=0)


@pytest.mark.parametrize("score", [-0.1, 1.1, float("nan"), float("inf")])
def test_scores_are_between_zero_and_one(score: float) -> None:
    with pytest.raises(ValidationError):
        ReferralOffered(
            survivor_id=uuid4(),
            occurred_at=T0,
            referral_id=uuid4(),
            provider_id=uuid4(),
            category=ServiceCategory.HOUSING,
            urgency=Urgency.ROUTINE,
            score=score,
            reasons=(),
            attempt=1,
            deadline=T0,
        )


def test_organization_names_refuse_control_characters() -> None:
    values: dict[str, Any] = {
        "provider_id": uuid4(),
        "occurred_at": T0,
        "categories": (ServiceCategory.LEGAL_AID,),
        "languages": ("en",),
        "offers_interpretation": True,
        "jurisdictions": ("NL",),
        "child_specialised": False,
        "accessible": True,
        "cross_border": False,
        "capacity": 10,
    }
    assert ProviderRegistered(**values, organization_name="Fairwork Legal Aid").subject
    with pytest.raises(ValidationError):
        ProviderRegistered(**values, organization_name="line\nbreak")
    with pytest.raises(ValidationError):
        ProviderRegistered(**values, organization_name="")


# ---------------------------------------------------------------------- helpers


def test_subject_is_the_survivor_or_the_provider() -> None:
    event = case_closed()
    assert event.subject == event.survivor_id
    capacity = ProviderCapacity(
        provider_id=uuid4(), occurred_at=T0, category=ServiceCategory.HEALTH, total=1, available=0
    )
    assert capacity.subject == capacity.provider_id


def test_sealed_repr_hides_the_ciphertext() -> None:
    sealed = Sealed(
        ciphertext=b"Maria, +31 6 1234",
        key_id="k1",
        algorithm=SealAlgorithm.XCHACHA20_POLY1305,
        recipient="agency:nl-police",
    )
    text = repr(identified(personal_data=sealed))
    assert "Maria" not in text
    assert "<sealed>" in text


def test_every_known_category_has_a_referral_topic() -> None:
    topic_categories = {c.topic_category for c in ServiceCategory} - {None}
    assert topic_categories == set(CATEGORIES)
    assert ServiceCategory.UNKNOWN.topic_category is None
    assert ServiceCategory.LEGAL_AID.topic_category == "legal-aid"


def test_band_groups() -> None:
    assert AgeBand.UNKNOWN.age_group is AgeGroup.UNKNOWN
    assert AgeBand.UNDER_12.age_group is AgeGroup.MINOR
    assert AgeBand.FROM_18_TO_24.age_group is AgeGroup.ADULT


def test_to_avro_renders_plain_values() -> None:
    event = identified(
        languages=("ro", "en"),
        personal_data=Sealed(
            ciphertext=b"\x01", key_id="k", algorithm=SealAlgorithm.AES_256_GCM, recipient="r"
        ),
    )
    plain = to_avro(event)
    assert plain["languages"] == ["ro", "en"]
    assert plain["gender"] == "FEMALE"
    assert type(plain["gender"]) is str
    assert plain["personal_data"] == {
        "ciphertext": b"\x01",
        "key_id": "k",
        "algorithm": "AES_256_GCM",
        "recipient": "r",
    }
    assert isinstance(plain["survivor_id"], UUID)
