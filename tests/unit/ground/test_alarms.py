"""XTCE alarms on the telemetry limits mechanism: every level, inclusive and exclusive bounds, context alarms
(Comparison and ComparisonList, every operator, raw and calibrated), enumeration alarms, minViolations, and the
errors for an alarm that cannot be read."""

from __future__ import annotations

import pytest
from lxml import etree

from satlake.ground.alarms import AlarmDefinitionError, ParameterAlarms, parse_alarms
from satlake.ground.xtce import MissionDatabase, MissionDefinitionError, load_mission_database
from satlake.telemetry.limits import ParameterLimits, alarm_level

from .conftest import DEMOSAT_XML


class Raw(float):
    """A calibrated value that carries its raw value, as space_packet_parser's values do."""

    raw_value: int

    def __new__(cls, value: float, raw: int) -> Raw:
        made = super().__new__(cls, value)
        made.raw_value = raw
        return made


@pytest.mark.parametrize(
    ("value", "severity", "limit"),
    [
        (28.0, None, None),
        (26.5, None, None),  # inclusive bound: on it is inside
        (26.49, "watch", 26.5),
        (26.0, "watch", 26.5),
        (25.0, "warning", 25.5),
        (23.9, "critical", 24.0),
        (29.6, "watch", 29.5),
        (31.0, "warning", 30.5),
        (40.0, "critical", 32.0),
        (float("nan"), None, None),
    ],
)
def test_default_numeric_alarm_levels(
    demosat: MissionDatabase, value: float, severity: str | None, limit: float | None
) -> None:
    verdict = demosat.alarms["BATT_V"].evaluate(value, {"MODE": "NOMINAL"})
    assert (verdict.severity, verdict.limit, verdict.min_violations) == (severity, limit, 2)


@pytest.mark.parametrize(
    ("parameter", "value", "severity", "limit"),
    [
        ("OBC_TEMP", -40.0, "severe", -40.0),  # exclusive bound: on it is outside
        ("OBC_TEMP", -39.99, "warning", -10.0),
        ("OBC_TEMP", 85.0, "severe", 85.0),
        ("OBC_TEMP", 84.99, "warning", 45.0),
        ("OBC_TEMP", 45.0, None, None),
        ("PANEL_TEMP", -80.0, "distress", -80.0),
        ("PANEL_TEMP", -79.99, "watch", -60.0),
        ("PANEL_TEMP", -100.0, "severe", -100.0),
        ("PANEL_TEMP", 119.99, "distress", 100.0),
    ],
)
def test_exclusive_bounds_distress_and_severe(
    demosat: MissionDatabase, parameter: str, value: float, severity: str | None, limit: float | None
) -> None:
    verdict = demosat.alarms[parameter].evaluate(value, {"MODE": "NOMINAL"})
    assert (verdict.severity, verdict.limit) == (severity, limit)


def test_the_bands_are_telemetry_limits_and_give_the_same_verdict(demosat: MissionDatabase) -> None:
    alarm = demosat.alarms["BATT_V"].default
    assert alarm is not None and isinstance(alarm.limits, ParameterLimits)
    assert alarm.limits.unit == "V"
    for value in (20.0, 25.2, 26.1, 28.0, 30.0, 35.0):
        assert demosat.alarms["BATT_V"].evaluate(value, {}).severity == alarm_level(alarm.limits, value)[0]


@pytest.mark.parametrize(
    ("mode", "value", "severity", "limit", "min_violations"),
    [
        ("NOMINAL", 40.0, None, None, 1),
        ("SCIENCE", 40.0, "warning", 35.0, 1),  # the context alarm is narrower
        ("SCIENCE", -15.0, "warning", 5.0, 1),
        ("SCIENCE", -25.0, "critical", -20.0, 1),
        ("SAFE", -25.0, "warning", -10.0, 1),  # no context matches: the default
    ],
)
def test_context_alarm_depends_on_the_other_values_of_the_packet(
    demosat: MissionDatabase, mode: str, value: float, severity: str | None, limit: float | None, min_violations: int
) -> None:
    verdict = demosat.alarms["OBC_TEMP"].evaluate(value, {"MODE": mode})
    assert (verdict.severity, verdict.limit, verdict.min_violations) == (severity, limit, min_violations)


def test_describe(demosat: MissionDatabase, cubeone: MissionDatabase) -> None:
    assert demosat.alarms["BATT_V"].describe() == (
        "watch [26.5..29.5] V, warning [25.5..30.5] V, critical [24..32] V (after 2)"
    )
    assert demosat.alarms["OBC_TEMP"].describe() == (
        "when MODE == SCIENCE: warning [5..35] degC, critical [-20..60] degC; "
        "otherwise warning [-10..45] degC, severe (-40..85) degC"
    )
    assert cubeone.alarms["STATE"].describe() == "SAFE critical, others watch"


def test_enumeration_alarms(demosat: MissionDatabase, cubeone: MissionDatabase) -> None:
    mode = demosat.alarms["MODE"]
    assert mode.evaluate("SAFE", {}).severity == "warning"
    assert mode.evaluate("NOMINAL", {}).severity is None
    assert mode.evaluate("SCIENCE", {}).min_violations == 1
    state = cubeone.alarms["STATE"]  # defaultAlarmLevel="watch": the labels not listed are a watch
    assert [state.evaluate(label, {}).severity for label in ("IDLE", "TX", "RX", "SAFE", "LOWPOWER")] == [
        None,
        None,
        None,
        "critical",
        "watch",
    ]


def test_comparison_list_with_raw_and_calibrated_values(cubeone: MissionDatabase) -> None:
    battery = cubeone.alarms["BATT_PCT"]
    weak_tx = {"STATE": _label("TX", 1), "RSSI": Raw(-110.0, -220)}
    assert battery.evaluate(25.0, weak_tx).severity == "warning"  # context: warning below 30
    assert battery.evaluate(25.0, weak_tx).min_violations == 1
    strong_tx = {"STATE": _label("TX", 1), "RSSI": Raw(-90.0, -180)}
    assert battery.evaluate(25.0, strong_tx).severity is None  # default: warning below 20 only
    assert battery.evaluate(25.0, strong_tx).min_violations == 2
    idle = {"STATE": _label("IDLE", 0), "RSSI": Raw(-110.0, -220)}  # STATE raw 0 is not >= 1
    assert battery.evaluate(25.0, idle).severity is None
    assert battery.evaluate(10.0, idle).severity == "critical"  # minExclusive=10
    assert battery.evaluate(10.01, idle).severity == "warning"
    assert battery.evaluate(25.0, {}).severity is None  # parameters absent: no context matches


class _Label(str):
    raw_value: int


def _label(text: str, raw: int) -> _Label:
    label = _Label(text)
    label.raw_value = raw
    return label


ALARMED_TYPE = """<SpaceSystem xmlns="http://www.omg.org/spec/XTCE/20180204" name="T"><TelemetryMetaData>
<ParameterTypeSet>
  <IntegerParameterType name="N_Type"><IntegerDataEncoding sizeInBits="8"/></IntegerParameterType>
  <FloatParameterType name="X_Type"><IntegerDataEncoding sizeInBits="8"/>{alarm}</FloatParameterType>
</ParameterTypeSet>
<ParameterSet><Parameter name="N" parameterTypeRef="N_Type"/><Parameter name="X" parameterTypeRef="X_Type"/>
<Parameter name="Y" parameterTypeRef="X_Type"/></ParameterSet>
</TelemetryMetaData></SpaceSystem>"""


def _alarms(alarm: str) -> dict[str, ParameterAlarms]:
    return parse_alarms(etree.fromstring(ALARMED_TYPE.format(alarm=alarm).encode()), "t.xml")


@pytest.mark.parametrize(
    ("operator", "matching", "not_matching"),
    [("==", 5, 4), ("!=", 4, 5), ("&lt;", 4, 5), ("&lt;=", 5, 6), ("&gt;", 6, 5), ("&gt;=", 5, 4), ("leq", 5, 6)],
)
def test_every_comparison_operator(operator: str, matching: int, not_matching: int) -> None:
    alarms = _alarms(
        f"""<ContextAlarmList><ContextAlarm><StaticAlarmRanges><WarningRange maxInclusive="1"/></StaticAlarmRanges>
        <ContextMatch><Comparison parameterRef="N" value="5" comparisonOperator="{operator}"/></ContextMatch>
        </ContextAlarm></ContextAlarmList>"""
    )
    assert set(alarms) == {"X", "Y"}  # alarms are on the type: every parameter of the type has them
    assert alarms["X"].evaluate(2.0, {"N": matching}).severity == "warning"
    assert alarms["X"].evaluate(2.0, {"N": not_matching}).severity is None


@pytest.mark.parametrize(
    ("alarm", "problem"),
    [
        (
            '<DefaultAlarm><StaticAlarmRanges><PanicRange minInclusive="1"/></StaticAlarmRanges></DefaultAlarm>',
            "PanicRange of FloatParameterType 'X_Type': unknown alarm range",
        ),
        (
            '<DefaultAlarm minViolations="0"><StaticAlarmRanges/></DefaultAlarm>',
            "minViolations='0' is not a positive integer",
        ),
        (
            '<DefaultAlarm><StaticAlarmRanges><WatchRange minInclusive="low"/></StaticAlarmRanges></DefaultAlarm>',
            "minInclusive='low' is not a number",
        ),
        (
            '<DefaultAlarm><StaticAlarmRanges rangeForm="inside"><WatchRange minInclusive="1"/></StaticAlarmRanges>'
            "</DefaultAlarm>",
            "rangeForm='outside'",
        ),
        ("<DefaultAlarm><AlarmMultiRanges/></DefaultAlarm>", "AlarmMultiRanges of FloatParameterType 'X_Type'"),
        (
            "<ContextAlarmList><ContextAlarm><StaticAlarmRanges/><ContextMatch><BooleanExpression/></ContextMatch>"
            "</ContextAlarm></ContextAlarmList>",
            "BooleanExpression",
        ),
        (
            '<ContextAlarmList><ContextAlarm><ContextMatch><Comparison parameterRef="N" value="1" '
            'comparisonOperator="~"/></ContextMatch></ContextAlarm></ContextAlarmList>',
            "unknown comparisonOperator '~'",
        ),
    ],
)
def test_an_alarm_it_cannot_read_names_the_file_the_element_and_the_line(alarm: str, problem: str) -> None:
    with pytest.raises(AlarmDefinitionError) as error:
        _alarms(alarm)
    assert str(error.value).startswith("t.xml line ")
    assert problem in str(error.value)


def test_an_unknown_level_in_a_mission_database_is_a_mission_definition_error() -> None:
    xml = DEMOSAT_XML.read_bytes().replace(b'alarmLevel="warning"', b'alarmLevel="yellow"')
    with pytest.raises(MissionDefinitionError) as error:
        load_mission_database(xml, name="demosat.xml")
    assert "demosat.xml line " in str(error.value)
    assert "EnumerationAlarm of EnumeratedParameterType 'MODE_Type': unknown alarm level 'yellow'" in str(error.value)


def test_a_context_alarm_on_an_unknown_parameter_is_refused() -> None:
    xml = DEMOSAT_XML.read_bytes().replace(b'parameterRef="MODE" value="SCIENCE"', b'parameterRef="MOOD" value="X"')
    with pytest.raises(
        MissionDefinitionError,
        match=r"line 1\d\d: ParameterRef 'MOOD' of FloatParameterType 'OBC_TEMP_Type' names no parameter",
    ):
        load_mission_database(xml, name="demosat.xml")
