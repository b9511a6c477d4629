"""The SLA policy: the shipped file, validation errors that name the key, deadline arithmetic."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from processors.exceptions import ProcessorsError
from processors.lifecycle import ReferralStatus
from processors.sla import (
    SlaPolicy,
    SlaPolicyError,
    add_working_days,
    default_policy,
    load_policy,
    parse_duration,
    parse_policy,
    policy_from_mapping,
)
from schemas.types import RiskLevel, ServiceCategory, Urgency

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday
HOUSING = ServiceCategory.HOUSING
LOW = RiskLevel.LOW


def raw() -> dict[str, Any]:
    """The shipped policy as plain data, to break one key at a time."""
    text = resources.files("processors").joinpath("sla_policy.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return copy.deepcopy(data)


def problems(data: object) -> tuple[str, ...]:
    with pytest.raises(SlaPolicyError) as caught:
        policy_from_mapping(data, "test.yaml")
    return caught.value.problems


def with_(**changes: Any) -> SlaPolicy:
    data = raw()
    data.update(changes)
    return policy_from_mapping(data)


# --------------------------------------------------------------------------- the shipped file


def test_the_shipped_file_has_the_design_defaults() -> None:
    policy = default_policy()
    assert policy.acknowledge.emergency == timedelta(hours=1)
    assert policy.acknowledge.priority == timedelta(hours=24)
    assert policy.acknowledge.routine == timedelta(hours=72)
    assert policy.start_service == timedelta(days=7)
    assert policy.legal_clocks.recovery_reflection.period == timedelta(days=30)
    assert policy.legal_clocks.reasonable_grounds is not None
    assert policy.legal_clocks.reasonable_grounds.working_days == 5
    assert policy.time_scale == 1.0
    assert policy is default_policy()  # loaded once


def test_every_key_of_the_model_is_documented_in_the_shipped_file() -> None:
    text = resources.files("processors").joinpath("sla_policy.yaml").read_text("utf-8")
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    for key in (
        "version",
        "time_scale",
        "acknowledge",
        "start_service",
        "shorter_for",
        "child",
        "critical_risk",
        "categories",
        "legal_clocks",
        "recovery_reflection",
        "period",
        "alert_before",
        "reasonable_grounds",
        "working_days",
        "jurisdictions",
        "holidays",
        "timezone",
        "retention",
        "after_closure",
    ):
        assert key in text
        assert key in comments or f"{key}:" in text


def test_a_policy_file_loads_from_a_path(tmp_path: Path) -> None:
    file = tmp_path / "sla.yaml"
    file.write_text(yaml.safe_dump({**raw(), "time_scale": 60}), "utf-8")
    assert load_policy(file).time_scale == 60


def test_a_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(SlaPolicyError, match="cannot read the file"):
        load_policy(tmp_path / "absent.yaml")


def test_policy_errors_belong_to_the_package_hierarchy() -> None:
    assert issubclass(SlaPolicyError, ProcessorsError)
    assert issubclass(SlaPolicyError, ValueError)


# --------------------------------------------------------------------------- validation


def test_a_missing_key_is_named() -> None:
    data = raw()
    del data["acknowledge"]["routine"]
    assert problems(data) == ("acknowledge.routine: missing (required key)",)


def test_a_missing_section_is_named() -> None:
    data = raw()
    del data["legal_clocks"]["recovery_reflection"]
    assert "legal_clocks.recovery_reflection: missing (required key)" in problems(data)


@pytest.mark.parametrize("value", ["-1h", "0h", "0s"])
def test_negative_and_zero_durations_are_refused(value: str) -> None:
    data = raw()
    data["acknowledge"]["emergency"] = value
    (problem,) = problems(data)
    assert problem.startswith("acknowledge.emergency: must be positive")


@pytest.mark.parametrize("value", [72, 1.5, True, "72", "3 days", "1m1h"])
def test_durations_need_units_in_order(value: object) -> None:
    data = raw()
    data["start_service"] = value
    (problem,) = problems(data)
    assert problem.startswith("start_service: ")
    assert "72h" in problem  # the message shows how to write one


def test_a_reflection_period_below_thirty_days_is_refused_citing_the_convention() -> None:
    data = raw()
    data["legal_clocks"]["recovery_reflection"]["period"] = "29d23h"
    (problem,) = problems(data)
    assert problem.startswith("legal_clocks.recovery_reflection.period: ")
    assert "at least 30 days" in problem
    assert "Art. 13" in problem


def test_exactly_thirty_days_is_accepted_and_a_longer_period_too() -> None:
    for period in ("30d", "45d"):
        data = raw()
        data["legal_clocks"]["recovery_reflection"]["period"] = period
        policy_from_mapping(data)


def test_a_demo_time_scale_cannot_hide_a_short_period() -> None:
    data = raw()
    data["time_scale"] = 60
    data["legal_clocks"]["recovery_reflection"]["period"] = "20d"
    assert "at least 30 days" in problems(data)[0]


def test_the_alert_must_fall_inside_the_period() -> None:
    data = raw()
    data["legal_clocks"]["recovery_reflection"]["alert_before"] = "30d"
    (problem,) = problems(data)
    assert problem == ("legal_clocks.recovery_reflection: alert_before must be shorter than period")


def test_an_unknown_category_is_refused_listing_the_known_ones() -> None:
    data = raw()
    data["categories"] = {"SHELTER": {"start_service": "1d"}}
    (problem,) = problems(data)
    assert problem.startswith("categories: unknown category 'SHELTER'")
    assert "LEGAL_AID" in problem


def test_a_category_spelt_two_ways_is_refused() -> None:
    data = raw()
    data["categories"] = {"legal-aid": {"start_service": "1d"}, "LEGAL_AID": {}}
    assert "category LEGAL_AID is configured twice" in problems(data)[0]


def test_the_unknown_category_symbol_cannot_be_configured() -> None:
    data = raw()
    data["categories"] = {"UNKNOWN": {"start_service": "1d"}}
    assert "unknown category 'UNKNOWN'" in problems(data)[0]


@pytest.mark.parametrize("value", [["HOUSING"], "HOUSING", None], ids=["list", "str", "null"])
def test_categories_that_are_not_a_mapping_are_a_problem_naming_the_key(value: object) -> None:
    data = raw()
    data["categories"] = value
    assert problems(data) == ("categories: Input should be a valid dictionary",)


def test_a_misspelt_key_is_refused_not_ignored() -> None:
    data = raw()
    data["acknowledge"]["emergncy"] = "1h"
    assert "acknowledge.emergncy: unknown key" in problems(data)


@pytest.mark.parametrize("factor", [0, -0.5, 1.5, float("nan")])
def test_factors_lie_in_zero_to_one(factor: float) -> None:
    data = raw()
    data["shorter_for"]["child"] = factor
    (problem,) = problems(data)
    assert problem.startswith("shorter_for.child: ")


def test_an_unknown_time_zone_is_named() -> None:
    data = raw()
    data["legal_clocks"]["reasonable_grounds"]["timezone"] = "Europe/Atlantis"
    (problem,) = problems(data)
    assert problem.startswith("legal_clocks.reasonable_grounds.timezone: unknown time zone")


def test_a_time_scale_below_one_is_refused() -> None:
    data = raw()
    data["time_scale"] = 0.5
    assert problems(data)[0].startswith("time_scale: ")


def test_the_version_is_required_and_checked() -> None:
    data = raw()
    data["version"] = 2
    assert problems(data)[0].startswith("version: ")


def test_every_problem_is_reported_at_once() -> None:
    data = raw()
    data["acknowledge"]["emergency"] = "-1h"
    del data["start_service"]
    data["legal_clocks"]["recovery_reflection"]["period"] = "10d"
    assert len(problems(data)) == 3


def test_yaml_level_errors() -> None:
    with pytest.raises(SlaPolicyError, match="not valid YAML") as caught:
        parse_policy("acknowledge: [unclosed", "bad.yaml")
    # One line, with the position and without PyYAML's excerpt of the file.
    assert str(caught.value).endswith("(line 1, column 23)")
    assert "unclosed" not in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(SlaPolicyError, match="must be a mapping"):
        parse_policy("- a list", "list.yaml")
    with pytest.raises(SlaPolicyError, match=r"duplicate key 'emergency' \(line 3, column 3\)$"):
        parse_policy("acknowledge:\n  emergency: 1h\n  emergency: 2h\n", "dup.yaml")
    with pytest.raises(SlaPolicyError, match=r"not valid YAML: unacceptable character #x0007"):
        parse_policy("acknowledge: \x07", "bell.yaml")  # PyYAML's reader: no line, a position


def test_the_error_message_names_the_source() -> None:
    with pytest.raises(SlaPolicyError) as caught:
        policy_from_mapping({}, "conf/sla.yaml")
    assert str(caught.value).startswith("invalid SLA policy conf/sla.yaml:")


def test_reasonable_grounds_may_be_turned_off_but_not_forgotten() -> None:
    data = raw()
    data["legal_clocks"]["reasonable_grounds"] = None
    assert policy_from_mapping(data).reasonable_grounds_due(T0, "GB") is None
    del data["legal_clocks"]["reasonable_grounds"]
    assert "legal_clocks.reasonable_grounds: missing (required key)" in problems(data)


def test_parse_duration_grammar() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration(" 2w ") == timedelta(weeks=2)
    assert parse_duration("1d12h") == timedelta(hours=36)
    assert parse_duration("45s") == timedelta(seconds=45)
    assert parse_duration(timedelta(hours=2)) == timedelta(hours=2)


# --------------------------------------------------------------------------- windows


def ack(
    policy: SlaPolicy, urgency: Urgency, *, child: bool = False, risk: RiskLevel = LOW
) -> timedelta:
    return policy.ack_window(urgency, HOUSING, child=child, risk=risk)


def test_acknowledgement_windows_by_urgency() -> None:
    policy = default_policy()
    assert ack(policy, Urgency.EMERGENCY) == timedelta(hours=1)
    assert ack(policy, Urgency.PRIORITY) == timedelta(hours=24)
    assert ack(policy, Urgency.ROUTINE) == timedelta(hours=72)


def test_an_unknown_urgency_gets_the_shortest_window() -> None:
    assert ack(default_policy(), Urgency.UNKNOWN) == timedelta(hours=1)


def test_minor_and_emergency() -> None:
    assert ack(default_policy(), Urgency.EMERGENCY, child=True) == timedelta(minutes=30)


def test_critical_risk_shortens_and_other_risks_do_not() -> None:
    policy = default_policy()
    assert ack(policy, Urgency.ROUTINE, risk=RiskLevel.CRITICAL) == timedelta(hours=36)
    for level in (RiskLevel.HIGH, RiskLevel.UNKNOWN):
        assert ack(policy, Urgency.ROUTINE, risk=level) == timedelta(hours=72)


def test_factors_do_not_compound_the_smaller_one_applies() -> None:
    data = raw()
    data["shorter_for"] = {"child": 0.5, "critical_risk": 0.25}
    policy = policy_from_mapping(data)
    both = ack(policy, Urgency.EMERGENCY, child=True, risk=RiskLevel.CRITICAL)
    assert both == timedelta(minutes=15)


def test_a_category_override_replaces_the_base_before_the_factor() -> None:
    policy = with_(
        categories={
            "legal-aid": {"acknowledge": {"emergency": "20m"}, "start_service": "2d"},
        }
    )
    aid = ServiceCategory.LEGAL_AID
    assert policy.ack_window(Urgency.EMERGENCY, aid, child=False, risk=LOW) == timedelta(minutes=20)
    assert policy.ack_window(Urgency.EMERGENCY, aid, child=True, risk=LOW) == timedelta(minutes=10)
    # The urgencies it does not name keep the base window, other categories are untouched.
    assert policy.ack_window(Urgency.ROUTINE, aid, child=False, risk=LOW) == timedelta(hours=72)
    assert ack(policy, Urgency.EMERGENCY) == timedelta(hours=1)
    assert policy.start_window(aid, child=False, risk=LOW) == timedelta(days=2)
    assert policy.start_window(aid, child=False, risk=RiskLevel.CRITICAL) == timedelta(days=1)
    assert policy.start_window(HOUSING, child=False, risk=LOW) == timedelta(days=7)


def test_referral_deadline_by_status() -> None:
    policy = default_policy()

    def due(status: ReferralStatus) -> datetime | None:
        return policy.referral_deadline(
            urgency=Urgency.PRIORITY, category=HOUSING, child=False, risk=LOW, status=status, at=T0
        )

    assert due(ReferralStatus.OFFERED) == T0 + timedelta(hours=24)
    assert due(ReferralStatus.ACCEPTED) == T0 + timedelta(days=7)
    for status in set(ReferralStatus) - {ReferralStatus.OFFERED, ReferralStatus.ACCEPTED}:
        assert due(status) is None


def test_deadlines_are_utc_with_whole_milliseconds() -> None:
    at = datetime(2025, 3, 3, 10, 0, 0, 123456, tzinfo=UTC)
    due = with_(time_scale=7).referral_deadline(
        urgency=Urgency.EMERGENCY,
        category=HOUSING,
        child=False,
        risk=LOW,
        status=ReferralStatus.OFFERED,
        at=at,
    )
    assert due is not None
    assert due.tzinfo is UTC
    assert due.microsecond % 1000 == 0


def test_time_scale_speeds_every_clock_up() -> None:
    demo = with_(time_scale=60)
    assert ack(demo, Urgency.EMERGENCY) == timedelta(minutes=1)
    assert demo.start_window(HOUSING, child=False, risk=LOW) == timedelta(hours=7 * 24 / 60)
    assert demo.reflection_end(T0) == T0 + timedelta(hours=12)
    assert demo.reflection_alert(T0) == T0 + timedelta(hours=23 * 24 / 60)


# --------------------------------------------------------------------------- legal clocks


def test_reflection_period_end_and_alert() -> None:
    policy = default_policy()
    assert policy.reflection_end(T0) == T0 + timedelta(days=30)
    assert policy.reflection_alert(T0) == T0 + timedelta(days=23)


def test_reasonable_grounds_over_a_weekend() -> None:
    policy = with_(
        legal_clocks={
            **raw()["legal_clocks"],
            "reasonable_grounds": {"working_days": 5, "timezone": "UTC"},
        }
    )
    friday = datetime(2025, 3, 7, 15, 30, tzinfo=UTC)
    assert policy.reasonable_grounds_due(friday, "NL") == datetime(2025, 3, 14, 15, 30, tzinfo=UTC)
    saturday = datetime(2025, 3, 8, 11, 0, tzinfo=UTC)
    assert policy.reasonable_grounds_due(saturday, "NL") == datetime(2025, 3, 14, 11, 0, tzinfo=UTC)
    wednesday = datetime(2025, 3, 5, 9, 0, tzinfo=UTC)
    assert policy.reasonable_grounds_due(wednesday, "NL") == datetime(2025, 3, 12, 9, 0, tzinfo=UTC)


def test_reasonable_grounds_skips_listed_holidays() -> None:
    # Identified Tuesday 23 Dec 2025 in England: 25 and 26 Dec and 1 Jan are bank holidays.
    start = datetime(2025, 12, 23, 10, 0, tzinfo=UTC)
    due = default_policy().reasonable_grounds_due(start, "GB")
    # Wed 24, Mon 29, Tue 30, Wed 31, Fri 2 Jan.
    assert due == datetime(2026, 1, 2, 10, 0, tzinfo=UTC)


def test_reasonable_grounds_applies_only_where_configured() -> None:
    policy = default_policy()
    assert policy.reasonable_grounds_due(T0, "GB") is not None
    assert policy.reasonable_grounds_due(T0, "GB-SCT") is not None  # a country covers its parts
    assert policy.reasonable_grounds_due(T0, "NL") is None


def test_working_days_follow_the_configured_zone() -> None:
    # 23:30 UTC on Friday is already Saturday in Tokyo: the count starts from Monday there.
    late_friday = datetime(2025, 3, 7, 23, 30, tzinfo=UTC)
    in_utc = add_working_days(late_friday, 1, zone="UTC")
    in_tokyo = add_working_days(late_friday, 1, zone="Asia/Tokyo")
    assert in_utc == datetime(2025, 3, 10, 23, 30, tzinfo=UTC)  # Monday 23:30 UTC
    assert in_tokyo == datetime(2025, 3, 9, 23, 30, tzinfo=UTC)  # Monday 08:30 in Tokyo


def test_working_days_edge_cases() -> None:
    monday = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    assert add_working_days(monday, 0) == monday
    assert add_working_days(
        monday, 1, holidays=frozenset({date(2025, 3, 4)})
    ) == monday + timedelta(days=2)
    with pytest.raises(ValueError, match="timezone-aware"):
        add_working_days(datetime(2025, 3, 3), 1)  # a naive datetime: the point of the test
    with pytest.raises(ValueError, match="negative"):
        add_working_days(monday, -1)
