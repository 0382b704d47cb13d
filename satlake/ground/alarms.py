"""XTCE alarms (``DefaultAlarm``, ``ContextAlarmList``) read from a mission database with lxml, since
space_packet_parser ignores them, and evaluated with the telemetry limits mechanism (``satlake.telemetry.limits``):
numeric ranges become ``Band``s of a ``ParameterLimits`` and a value's severity is the worst band it is outside of.

Semantics follow Yamcs: alarms attach to parameter types; the first ``ContextAlarm`` whose ``ContextMatch`` holds
for the other values of the same packet wins, else the ``DefaultAlarm``; each range is the band a value must stay
in ("outside" form) and is checked on the calibrated value; ``minViolations`` (default 1) is recorded with every
verdict (it decides when an operator is alerted, not the per-sample result). Enumerations alarm per label, with
``defaultAlarmLevel`` for the unlisted ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lxml import etree

from satlake.telemetry.limits import SEVERITIES, Band, Bound, ParameterLimits, alarm_level

LEVELS = ("normal", *SEVERITIES)
_RANGES = {f"{severity.capitalize()}Range": severity for severity in SEVERITIES}
_OPERATORS: dict[str, Callable[[object, object], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
}
_OPERATOR_ALIASES = {"eq": "==", "neq": "!=", "lt": "<", "leq": "<=", "gt": ">", "geq": ">="}
_NUMERIC_TYPES = ("FloatParameterType", "IntegerParameterType")
_IGNORED_IN_ALARM = ("AncillaryDataSet",)


class AlarmDefinitionError(ValueError):
    """An alarm element that cannot be read; the message names the file, the element and its line."""


@dataclass(frozen=True)
class AlarmVerdict:
    """The result of checking one value: severity (None: within limits), the limit crossed (numeric alarms)
    and the minViolations of the alarm that applied."""

    severity: str | None
    limit: float | None
    min_violations: int


@dataclass(frozen=True)
class Comparison:
    """One ``Comparison`` of a ``ContextMatch``: ``parameter operator value``."""

    parameter: str
    operator: str
    value: str
    use_calibrated: bool = True

    def holds(self, packet_values: Mapping[str, object]) -> bool:
        """Whether the comparison holds for the packet's values (False when the parameter is absent). A value
        with a ``raw_value`` attribute (space_packet_parser's) gives its raw form when ``use_calibrated`` is off."""
        if self.parameter not in packet_values:
            return False
        actual = packet_values[self.parameter]
        if not self.use_calibrated:
            actual = getattr(actual, "raw_value", actual)
        try:
            expected = _coerce(self.value, actual)
            return _OPERATORS[self.operator](actual, expected)
        except (TypeError, ValueError):
            return False


@dataclass(frozen=True)
class AlarmDefinition:
    """One alarm: numeric bands (``limits``) or enumeration levels by label (``levels`` with ``default_level``)."""

    min_violations: int = 1
    limits: ParameterLimits | None = None
    levels: Mapping[str, str] = field(default_factory=dict)
    default_level: str = "normal"

    def check(self, eng_value: object) -> AlarmVerdict:
        if self.limits is not None:
            if isinstance(eng_value, bool) or not isinstance(eng_value, int | float):
                return AlarmVerdict(None, None, self.min_violations)
            severity, limit = alarm_level(self.limits, float(eng_value))
            return AlarmVerdict(severity, limit, self.min_violations)
        level = self.levels.get(str(eng_value), self.default_level)
        return AlarmVerdict(None if level == "normal" else level, None, self.min_violations)

    def describe(self) -> str:
        """One line for people: ``watch 26.5..29.5 V, warning ... (after 2)``."""
        if self.limits is not None:
            bands = self.limits.bands
            text = ", ".join(f"{s} {bands[s].describe(self.limits.unit)}" for s in SEVERITIES if s in bands)
        else:
            listed = [f"{label} {level}" for label, level in self.levels.items() if level != "normal"]
            text = ", ".join(listed + ([f"others {self.default_level}"] if self.default_level != "normal" else []))
        return f"{text or 'none'}{f' (after {self.min_violations})' if self.min_violations > 1 else ''}"


@dataclass(frozen=True)
class ContextAlarm:
    """An alarm that applies when every comparison of its ``ContextMatch`` holds."""

    match: tuple[Comparison, ...]
    alarm: AlarmDefinition

    def applies(self, packet_values: Mapping[str, object]) -> bool:
        return all(comparison.holds(packet_values) for comparison in self.match)

    def describe(self) -> str:
        condition = " and ".join(f"{c.parameter} {c.operator} {c.value}" for c in self.match)
        return f"when {condition}: {self.alarm.describe()}"


@dataclass(frozen=True)
class ParameterAlarms:
    """The alarms of one parameter (from its type): the default and the context alarms in document order."""

    default: AlarmDefinition | None = None
    contexts: tuple[ContextAlarm, ...] = ()

    def applicable(self, packet_values: Mapping[str, object]) -> AlarmDefinition | None:
        """The alarm that applies given the other values of the packet (None: no alarm to check)."""
        for context in self.contexts:
            if context.applies(packet_values):
                return context.alarm
        return self.default

    def describe(self) -> str:
        """The alarms in one line: the context alarms first (they win), then the default."""
        parts = [context.describe() for context in self.contexts]
        if self.default is not None:
            parts.append(f"{'otherwise ' if parts else ''}{self.default.describe()}")
        return "; ".join(parts)

    def evaluate(self, eng_value: object, packet_values: Mapping[str, object]) -> AlarmVerdict:
        """Check a calibrated value. No applicable alarm gives (None, None, 0)."""
        alarm = self.applicable(packet_values)
        return AlarmVerdict(None, None, 0) if alarm is None else alarm.check(eng_value)


def parse_alarms(root: etree._Element, source: str) -> dict[str, ParameterAlarms]:
    """The alarms of every parameter whose type has some, by parameter name, from a parsed XTCE document.
    Raises ``AlarmDefinitionError`` for an alarm it cannot read (unknown level, unsupported alarm form, ...)."""
    by_type: dict[str, ParameterAlarms] = {}
    for ptype in _children(_find(root, "ParameterTypeSet"), None):
        unit = " ".join(ptype.xpath('./*[local-name()="UnitSet"]/*[local-name()="Unit"]/text()'))
        reader = _AlarmReader(source, _local(ptype), ptype.get("name", "?"), unit)
        default = None
        contexts: list[ContextAlarm] = []
        for child in ptype:
            tag = _local(child)
            if tag == "DefaultAlarm":
                default = reader.alarm(child)
            elif tag == "ContextAlarmList":
                contexts = [reader.context(element) for element in _children(child, None)]
        if default is not None or contexts:
            by_type[ptype.get("name", "")] = ParameterAlarms(default, tuple(contexts))
    alarms: dict[str, ParameterAlarms] = {}
    for parameter in _children(_find(root, "ParameterSet"), "Parameter"):
        type_name = parameter.get("parameterTypeRef", "")
        if type_name in by_type:
            alarms[parameter.get("name", "")] = by_type[type_name]
    return alarms


@dataclass(frozen=True)
class _AlarmReader:
    source: str
    type_tag: str
    type_name: str
    unit: str = ""

    def fail(self, element: etree._Element, problem: str) -> AlarmDefinitionError:
        where = f"{self.source} line {element.sourceline}" if element.sourceline else self.source
        return AlarmDefinitionError(f"{where}: {_local(element)} of {self.type_tag} {self.type_name!r}: {problem}")

    def alarm(self, element: etree._Element) -> AlarmDefinition:
        min_violations = self._min_violations(element)
        numeric = self.type_tag in _NUMERIC_TYPES
        bands: dict[str, Band] = {}
        levels: dict[str, str] = {}
        for child in element:
            tag = _local(child)
            if tag == "StaticAlarmRanges" and numeric:
                bands = self._ranges(child)
            elif tag == "EnumerationAlarmList" and self.type_tag == "EnumeratedParameterType":
                for entry in _children(child, "EnumerationAlarm"):
                    levels[entry.get("enumerationLabel", "")] = self._level(entry, entry.get("alarmLevel"))
            elif tag not in ("ContextMatch", *_IGNORED_IN_ALARM):
                raise self.fail(child, "satlake reads StaticAlarmRanges and EnumerationAlarmList alarms only")
        if numeric:
            return AlarmDefinition(min_violations, ParameterLimits(unit=self.unit, bands=bands))
        if self.type_tag != "EnumeratedParameterType":
            raise self.fail(element, "alarms are read on integer, float and enumerated parameter types only")
        default_level = self._level(element, element.get("defaultAlarmLevel", "normal"))
        return AlarmDefinition(min_violations, None, levels, default_level)

    def context(self, element: etree._Element) -> ContextAlarm:
        match = [child for child in element if _local(child) == "ContextMatch"]
        if len(match) != 1:
            raise self.fail(element, "a context alarm needs exactly one ContextMatch")
        return ContextAlarm(self._match(match[0]), self.alarm(element))

    def _match(self, element: etree._Element) -> tuple[Comparison, ...]:
        comparisons: list[etree._Element] = []
        for child in element:
            tag = _local(child)
            if tag == "Comparison":
                comparisons.append(child)
            elif tag == "ComparisonList":
                comparisons.extend(_children(child, "Comparison"))
            else:
                raise self.fail(child, "a ContextMatch is read as a Comparison or a ComparisonList only")
        if not comparisons:
            raise self.fail(element, "the ContextMatch compares nothing")
        return tuple(self._comparison(c) for c in comparisons)

    def _comparison(self, element: etree._Element) -> Comparison:
        operator = element.get("comparisonOperator", "==")
        operator = _OPERATOR_ALIASES.get(operator, operator)
        if operator not in _OPERATORS:
            raise self.fail(element, f"unknown comparisonOperator {operator!r} (expected ==, !=, <, <=, >, >=)")
        parameter, value = element.get("parameterRef"), element.get("value")
        if not parameter or value is None:
            raise self.fail(element, "a Comparison needs parameterRef and value")
        calibrated = element.get("useCalibratedValue", "true").strip().lower() != "false"
        return Comparison(parameter, operator, value, calibrated)

    def _ranges(self, element: etree._Element) -> dict[str, Band]:
        if element.get("rangeForm", "outside") != "outside":
            raise self.fail(element, "only rangeForm='outside' is supported (each range is the allowed band)")
        bands: dict[str, Band] = {}
        for child in element:
            tag = _local(child)
            if tag not in _RANGES:
                raise self.fail(child, f"unknown alarm range (expected one of {', '.join(_RANGES)})")
            bands[_RANGES[tag]] = Band(self._bound(child, "min"), self._bound(child, "max"))
        return bands

    def _bound(self, element: etree._Element, side: str) -> Bound | None:
        for suffix, inclusive in (("Inclusive", True), ("Exclusive", False)):
            text = element.get(side + suffix)
            if text is not None:
                try:
                    return Bound(float(text), inclusive)
                except ValueError:
                    raise self.fail(element, f"{side}{suffix}={text!r} is not a number") from None
        return None

    def _level(self, element: etree._Element, text: str | None) -> str:
        level = (text or "").strip().lower()
        if level not in LEVELS:
            raise self.fail(element, f"unknown alarm level {text!r} (expected one of {', '.join(LEVELS)})")
        return level

    def _min_violations(self, element: etree._Element) -> int:
        text = element.get("minViolations", "1")
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise self.fail(element, f"minViolations={text!r} is not a positive integer")
        return value


def _coerce(text: str, like: object) -> object:
    """The comparison value as the type of the value it is compared with (XTCE gives it as text)."""
    if isinstance(like, bool) or (isinstance(like, int) and text.strip().lower() in ("true", "false")):
        return int(text.strip().lower() in ("1", "true"))
    if isinstance(like, int):
        return int(text) if text.strip().lstrip("+-").isdigit() else float(text)
    if isinstance(like, float):
        return float(text)
    return text


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _find(root: etree._Element, name: str) -> etree._Element | None:
    found = root.xpath(f'./*[local-name()="TelemetryMetaData"]/*[local-name()="{name}"]')
    return found[0] if found else None


def _children(element: etree._Element | None, name: str | None) -> list[etree._Element]:
    """Element children (comments skipped), optionally only those with a local name."""
    if element is None:
        return []
    return [child for child in element if _local(child) and (name is None or _local(child) == name)]
