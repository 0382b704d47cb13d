"""Reading a mission's limits file (YAML) into ``TelemetryLimits``, with errors that name the file, the line
and the key to fix. The format is documented in README.md and in the shipped ``limits.default.yaml``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from satlake.telemetry.limits import (
    SEVERITIES,
    Band,
    Bound,
    ContextLimits,
    ParameterLimits,
    ParameterOverride,
    TelemetryLimits,
)
from satlake.telemetry.tables import MEASURES

DEFAULT_LIMITS_PATH = Path(__file__).with_name("limits.default.yaml")
# The longest clock skew a file may allow: ingestion files an event under its own day only this close ahead.
MAX_FUTURE_SKEW_LIMIT_S = 86_400.0
_BOUND_KEYS = ("min", "max", "min_exclusive", "max_exclusive")
_TOP_KEYS = ("mission", "max_future_skew_s", "max_critical_alarm_rate", "parameters", "satellites")
_PARAMETER_KEYS = ("unit", "hard", *SEVERITIES)


class LimitsFileError(ValueError):
    """A limits file cannot be used: the message says ``file:line: key: problem``."""

    def __init__(self, path: str, line: int | None, key: str, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")
        self.path, self.line, self.key, self.problem = path, line, key, problem


class _Reader:
    """Walks the YAML node tree (which keeps line numbers) and turns it into the limits model."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: yaml.Node | None, key: str, problem: str) -> LimitsFileError:
        return LimitsFileError(self.source, node.start_mark.line + 1 if node is not None else None, key, problem)

    def mapping(
        self, node: yaml.Node, key: str, allowed: tuple[str, ...] | None
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, f"expected a mapping of keys to values, found {_kind(node)}")
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            name = str(key_node.value)
            path = f"{key}.{name}" if key else name
            if name in entries:
                raise self.fail(key_node, path, f"given twice (first on line {entries[name][0].start_mark.line + 1})")
            if allowed is not None and name not in allowed:
                raise self.fail(key_node, path, f"unknown key; expected one of {', '.join(allowed)}")
            entries[name] = (key_node, value_node)
        return entries

    def scalar(self, node: yaml.Node, key: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, key, f"expected a single value, found {_kind(node)}")
        return yaml.safe_load(yaml.serialize(node))

    def number(self, node: yaml.Node, key: str, check: Callable[[float], str | None] | None = None) -> float:
        value = self.scalar(node, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(node, key, f"expected a number, found {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise self.fail(node, key, f"expected a finite number, found {value!r}")
        problem = check(number) if check else None
        if problem:
            raise self.fail(node, key, problem)
        return number

    def text(self, node: yaml.Node, key: str) -> str:
        value = self.scalar(node, key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, key, f"expected a non-empty text, found {value!r}")
        return value

    def band(self, node: yaml.Node, key: str) -> Band:
        entries = self.mapping(node, key, _BOUND_KEYS)
        bounds: dict[str, Bound] = {}
        for side in ("min", "max"):
            given = [name for name in (side, f"{side}_exclusive") if name in entries]
            if len(given) == 2:
                raise self.fail(entries[given[1]][0], f"{key}.{given[1]}", f"give {side} or {side}_exclusive, not both")
            if given:
                bounds[side] = Bound(self.number(entries[given[0]][1], f"{key}.{given[0]}"), given[0] == side)
        if not bounds:
            raise self.fail(node, key, f"a range needs at least one of {', '.join(_BOUND_KEYS)}")
        low, high = bounds.get("min"), bounds.get("max")
        if (
            low is not None
            and high is not None
            and (low.value > high.value or (low.value == high.value and not (low.inclusive and high.inclusive)))
        ):
            raise self.fail(node, key, f"the range is empty: min {low.value:g} is not below max {high.value:g}")
        return Band(low, high)

    def parameter(self, node: yaml.Node, key: str) -> tuple[str, Band | None, bool, dict[str, Band | None]]:
        """unit, hard band, whether hard was given, and severity bands (None where the file says null)."""
        entries = self.mapping(node, key, _PARAMETER_KEYS)
        unit = self.text(entries["unit"][1], f"{key}.unit") if "unit" in entries else ""
        hard_given = "hard" in entries
        hard = None if not hard_given or _is_null(entries["hard"][1]) else self.band(entries["hard"][1], f"{key}.hard")
        bands = {
            severity: None if _is_null(entries[severity][1]) else self.band(entries[severity][1], f"{key}.{severity}")
            for severity in SEVERITIES
            if severity in entries
        }
        return unit, hard, hard_given, bands

    def check_nesting(self, node: yaml.Node, key: str, limits: ParameterLimits) -> None:
        """A more severe band is at least as wide as a milder one, and the hard range wider than every band:
        otherwise a severity could never be reached. The error points at the narrower band when ``node`` (the
        parameter's mapping) holds it."""
        entries = {str(k.value): v for k, v in node.value} if isinstance(node, yaml.MappingNode) else {}
        ordered = [(s, limits.bands[s]) for s in SEVERITIES if s in limits.bands]
        if limits.hard is not None:
            ordered.append(("hard", limits.hard))
        for i, (mild_name, mild) in enumerate(ordered):
            for severe_name, severe in ordered[i + 1 :]:
                narrower = (
                    (severe.low is not None and mild.low is not None and severe.low.value > mild.low.value)
                    or (severe.high is not None and mild.high is not None and severe.high.value < mild.high.value)
                )  # fmt: skip
                if not narrower:
                    continue
                raise self.fail(
                    entries.get(severe_name, node), f"{key}.{severe_name}" if severe_name in entries else key,
                    f"{severe_name} {severe.describe()} is narrower than {mild_name} {mild.describe()}: each "
                    f"band must contain the milder ones ({', '.join(SEVERITIES)}, then hard)",
                )  # fmt: skip

    def measure_name(self, key_node: yaml.Node, key: str) -> str:
        if key_node.value not in MEASURES:
            raise self.fail(key_node, key, f"unknown parameter; the telemetry event has {', '.join(MEASURES)}")
        return str(key_node.value)


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"{node.value!r}" if node.value != "" else "nothing"


def parse_limits(text: str, source: str = "<limits>") -> TelemetryLimits:
    """The limits described by ``text`` (a limits file's content); ``source`` names it in errors."""
    reader = _Reader(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        raise LimitsFileError(source, mark.line + 1 if mark else None, "", f"not valid YAML: {error.problem}") from None
    if root is None:
        raise LimitsFileError(source, None, "", "the file is empty; see the shipped limits.default.yaml")
    top = reader.mapping(root, "", _TOP_KEYS)
    for required in ("mission", "parameters"):
        if required not in top:
            raise reader.fail(root, required, "missing; every limits file names its mission and its parameters")
    mission = reader.text(top["mission"][1], "mission")

    def fraction(value: float) -> str | None:
        return None if 0.0 <= value <= 1.0 else f"{value:g} is not a share between 0 and 1"

    def skew(value: float) -> str | None:
        if 0.0 <= value <= MAX_FUTURE_SKEW_LIMIT_S:
            return None
        return f"{value:g} s is outside 0..{MAX_FUTURE_SKEW_LIMIT_S:g} s"

    options: dict[str, float] = {}
    if "max_future_skew_s" in top:
        options["max_future_skew_s"] = reader.number(top["max_future_skew_s"][1], "max_future_skew_s", skew)
    if "max_critical_alarm_rate" in top:
        options["max_critical_alarm_rate"] = reader.number(
            top["max_critical_alarm_rate"][1], "max_critical_alarm_rate", fraction
        )

    parameters: dict[str, ParameterLimits] = {}
    for name, (key_node, value_node) in reader.mapping(top["parameters"][1], "parameters", None).items():
        measure = reader.measure_name(key_node, f"parameters.{name}")
        unit, hard, _, bands = reader.parameter(value_node, f"parameters.{name}")
        limits = ParameterLimits(unit, hard, {s: b for s, b in bands.items() if b is not None})
        reader.check_nesting(value_node, f"parameters.{name}", limits)
        parameters[measure] = limits

    contexts = []
    if "satellites" in top:
        contexts_node = top["satellites"][1]
        if not isinstance(contexts_node, yaml.SequenceNode):
            raise reader.fail(contexts_node, "satellites", "expected a list of {match, parameters} entries")
        for index, context_node in enumerate(contexts_node.value):
            contexts.append(_context(reader, context_node, f"satellites[{index}]", parameters))
    return TelemetryLimits(mission, parameters, tuple(contexts), source=source, **options)


def _context(reader: _Reader, node: yaml.Node, key: str, defaults: dict[str, ParameterLimits]) -> ContextLimits:
    entries = reader.mapping(node, key, ("match", "parameters"))
    if "match" not in entries or "parameters" not in entries:
        raise reader.fail(node, key, "needs match (a satellite name or pattern, or a list of them) and parameters")
    match_node = entries["match"][1]
    if isinstance(match_node, yaml.SequenceNode):
        patterns = tuple(reader.text(item, f"{key}.match") for item in match_node.value)
    else:
        patterns = (reader.text(match_node, f"{key}.match"),)
    if not patterns:
        raise reader.fail(match_node, f"{key}.match", "the list of satellites is empty")
    overrides: dict[str, ParameterOverride] = {}
    for name, (key_node, value_node) in reader.mapping(entries["parameters"][1], f"{key}.parameters", None).items():
        measure = reader.measure_name(key_node, f"{key}.parameters.{name}")
        unit, hard, hard_given, bands = reader.parameter(value_node, f"{key}.parameters.{name}")
        if unit:
            raise reader.fail(value_node, f"{key}.parameters.{name}.unit", "a unit is set once, in parameters")
        override = ParameterOverride(hard, hard_given, bands)
        reader.check_nesting(
            value_node, f"{key}.parameters.{name}", override.apply(defaults.get(measure, ParameterLimits()))
        )
        overrides[measure] = override
    return ContextLimits(patterns, overrides)


def load_limits(path: Path | None = None) -> TelemetryLimits:
    """The limits in ``path`` (default: the shipped ``limits.default.yaml``)."""
    path = path or DEFAULT_LIMITS_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise LimitsFileError(str(path), None, "", f"cannot be read ({error.strerror or error}); "
                              "set SATLAKE_TELEMETRY_LIMITS to a readable limits file") from None  # fmt: skip
    except UnicodeDecodeError as error:
        raise LimitsFileError(str(path), None, "", f"is not UTF-8 text ({error.reason})") from None
    return parse_limits(text, str(path))
