"""Telemetry limits as mission-control systems keep them (XTCE alarm ranges, Yamcs): per parameter, severity
bands and an optional hard range, defaults for the fleet and contexts that override them for some satellites.

A value outside a band raises an alarm of that band's severity (the worst band it is outside of wins), and is
kept. Only a value outside the *hard* range, which a mission marks as physically impossible, is not a reading.
The model is plain data, so a limits file (``limits_file``) and, later, an XTCE mission database (default and
context alarm ranges) feed the same evaluation. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from satlake.telemetry.tables import MEASURES

# XTCE's alarm levels above "normal", mildest first (AlarmLevelType); a level's number is its position + 1.
SEVERITIES = ("watch", "warning", "distress", "critical", "severe")
SEVERITY_LEVEL = {name: level for level, name in enumerate(SEVERITIES, start=1)}
DEFAULT_MAX_FUTURE_SKEW_S = 300.0
DEFAULT_MAX_CRITICAL_ALARM_RATE = 0.01


@dataclass(frozen=True, slots=True)
class Bound:
    """One end of a range; ``inclusive`` says whether the value itself is inside (XTCE minInclusive)."""

    value: float
    inclusive: bool = True


@dataclass(frozen=True, slots=True)
class Band:
    """The range a value must lie in; a missing end is unbounded."""

    low: Bound | None = None
    high: Bound | None = None

    def crossed(self, value: float) -> Bound | None:
        """The end ``value`` lies beyond, or None when it is inside."""
        low, high = self.low, self.high
        if low is not None and (value < low.value or (value == low.value and not low.inclusive)):
            return low
        if high is not None and (value > high.value or (value == high.value and not high.inclusive)):
            return high
        return None

    def describe(self, unit: str = "") -> str:
        left = "(-inf" if self.low is None else f"{'[' if self.low.inclusive else '('}{self.low.value:g}"
        right = "+inf)" if self.high is None else f"{self.high.value:g}{']' if self.high.inclusive else ')'}"
        return f"{left}..{right}{' ' + unit if unit else ''}"

    def as_data(self) -> dict[str, object]:
        data: dict[str, object] = {}
        if self.low is not None:
            data["min" if self.low.inclusive else "min_exclusive"] = self.low.value
        if self.high is not None:
            data["max" if self.high.inclusive else "max_exclusive"] = self.high.value
        return data


@dataclass(frozen=True)
class ParameterLimits:
    """The limits of one parameter: alarm bands by severity name, and the hard range (None: no hard range)."""

    unit: str = ""
    hard: Band | None = None
    bands: Mapping[str, Band] = field(default_factory=dict)

    def as_data(self) -> dict[str, object]:
        data: dict[str, object] = {"unit": self.unit}
        if self.hard is not None:
            data["hard"] = self.hard.as_data()
        data |= {severity: self.bands[severity].as_data() for severity in SEVERITIES if severity in self.bands}
        return data


@dataclass(frozen=True)
class ParameterOverride:
    """What a context changes of one parameter: ``hard`` and ``bands`` replace the defaults' (a band of None
    removes that severity); ``hard_set`` says whether ``hard`` was given at all (None then means "no hard range")."""

    hard: Band | None = None
    hard_set: bool = False
    bands: Mapping[str, Band | None] = field(default_factory=dict)

    def apply(self, limits: ParameterLimits) -> ParameterLimits:
        bands = {**limits.bands, **self.bands}
        return ParameterLimits(
            unit=limits.unit,
            hard=self.hard if self.hard_set else limits.hard,
            bands={severity: band for severity, band in bands.items() if band is not None},
        )

    def as_data(self) -> dict[str, object]:
        data: dict[str, object] = {"hard": self.hard.as_data() if self.hard else None} if self.hard_set else {}
        return data | {s: (b.as_data() if b else None) for s, b in sorted(self.bands.items())}


@dataclass(frozen=True)
class ContextLimits:
    """Overrides that apply to the satellites whose name matches one of ``satellites`` (shell-style patterns,
    case-sensitive). XTCE context alarms add conditions on other parameters to the same shape."""

    satellites: tuple[str, ...]
    parameters: Mapping[str, ParameterOverride]

    def matches(self, satellite_name: str) -> bool:
        return any(fnmatchcase(satellite_name, pattern) for pattern in self.satellites)


@dataclass(frozen=True)
class TelemetryLimits:
    """A mission's limits: defaults per parameter, contexts applied in order (a later one wins), the clock skew
    a timestamp may have into the future, and the share of critical alarms the bronze check tolerates."""

    mission: str
    parameters: Mapping[str, ParameterLimits]
    contexts: tuple[ContextLimits, ...] = ()
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S
    max_critical_alarm_rate: float = DEFAULT_MAX_CRITICAL_ALARM_RATE
    source: str = "<built in>"

    @cached_property
    def version(self) -> str:
        """A digest of everything that decides a verdict (not of comments or layout): recorded in every row."""
        canonical = json.dumps(self.as_data(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def max_future_skew_ns(self) -> int:
        return int(self.max_future_skew_s * 1e9)

    def as_data(self) -> dict[str, object]:
        return {
            "mission": self.mission,
            "max_future_skew_s": self.max_future_skew_s,
            "max_critical_alarm_rate": self.max_critical_alarm_rate,
            "parameters": {name: limits.as_data() for name, limits in self.parameters.items()},
            "satellites": [
                {"match": list(c.satellites), "parameters": {n: o.as_data() for n, o in c.parameters.items()}}
                for c in self.contexts
            ],
        }

    def for_satellite(self, satellite_name: str) -> tuple[ParameterLimits, ...]:
        """The limits of every measure (``MEASURES`` order) for one satellite, contexts applied."""
        cache = self._resolved
        if satellite_name not in cache:
            resolved = {m: self.parameters.get(m, ParameterLimits()) for m in MEASURES}
            for context in self.contexts:
                if context.matches(satellite_name):
                    for measure, override in context.parameters.items():
                        resolved[measure] = override.apply(resolved[measure])
            cache[satellite_name] = tuple(resolved[m] for m in MEASURES)
        return cache[satellite_name]

    @cached_property
    def _resolved(self) -> dict[str, tuple[ParameterLimits, ...]]:
        return {}

    def hard_violations(self, satellite_name: str, values: Sequence[float]) -> list[tuple[str, float, Band, str]]:
        """(measure, value, hard band, unit) for every finite value outside its hard range."""
        found = []
        for measure, value, limits in zip(MEASURES, values, self.for_satellite(satellite_name), strict=True):
            if limits.hard is not None and math.isfinite(value) and limits.hard.crossed(value) is not None:
                found.append((measure, value, limits.hard, limits.unit))
        return found


@dataclass(frozen=True)
class AlarmColumns:
    """Per reading and measure (arrays of shape (readings, len(MEASURES))): the alarm level (0 = within
    limits, else 1 + the index in ``SEVERITIES``) and the limit crossed (NaN when none)."""

    levels: np.ndarray  # int8
    limits: np.ndarray  # float64

    def severity_array(self, column: int) -> pa.Array:
        """Severity names of one measure as an Arrow string array, null where within limits."""
        return _severity_names(self.levels[:, column])

    def limit_array(self, column: int) -> pa.Array:
        """The limit one measure crossed, null where within limits."""
        crossed = self.limits[:, column]
        if not (self.levels[:, column] > 0).any():  # the common case: no alarm on this measure at all
            return pa.nulls(len(crossed), pa.float64())
        return pa.array(crossed, pa.float64(), from_pandas=True)

    def worst_severity(self) -> pa.Array:
        return _severity_names(self.levels.max(axis=1) if self.levels.size else np.zeros(len(self.levels), np.int8))


def _severity_names(levels: np.ndarray) -> pa.Array:
    if not levels.any():
        return pa.nulls(len(levels), pa.string())
    return pa.array([None, *SEVERITIES], pa.string()).take(pa.array(levels.astype(np.int32)))


@dataclass(frozen=True)
class _BoundArrays:
    """Per satellite profile, measure and level (level 0 = hard): low/high bounds and whether each is inclusive."""

    low: np.ndarray
    high: np.ndarray
    low_inclusive: np.ndarray
    high_inclusive: np.ndarray

    def has_band(self, profile: int, level: int) -> bool:
        """Whether any measure of the profile has a bounded band at this level (else nothing lies outside)."""
        return bool(np.isfinite(self.low[profile, :, level]).any() or np.isfinite(self.high[profile, :, level]).any())


def _bound_arrays(profiles: Sequence[tuple[ParameterLimits, ...]]) -> _BoundArrays:
    shape = (len(profiles), len(MEASURES), len(SEVERITIES) + 1)
    arrays = _BoundArrays(np.full(shape, -np.inf), np.full(shape, np.inf), np.ones(shape, bool), np.ones(shape, bool))
    for p, profile in enumerate(profiles):
        for m, limits in enumerate(profile):
            bands = [limits.hard, *(limits.bands.get(severity) for severity in SEVERITIES)]
            for level, band in enumerate(bands):
                if band is None:
                    continue
                if band.low is not None:
                    arrays.low[p, m, level], arrays.low_inclusive[p, m, level] = band.low.value, band.low.inclusive
                if band.high is not None:
                    arrays.high[p, m, level], arrays.high_inclusive[p, m, level] = band.high.value, band.high.inclusive
    return arrays


def _satellite_profiles(limits: TelemetryLimits, names: pa.Array) -> tuple[np.ndarray, _BoundArrays]:
    """Each reading's profile index and the bound arrays of the distinct profiles its satellites resolve to."""
    if isinstance(names, pa.DictionaryArray):
        encoded = names
    else:
        encoded = pc.dictionary_encode(names.combine_chunks() if isinstance(names, pa.ChunkedArray) else names)
    distinct = encoded.dictionary.to_pylist()
    profiles: dict[tuple, int] = {}
    resolved: list[tuple[ParameterLimits, ...]] = []
    profile_of_name = np.zeros(len(distinct), np.int64)
    for position, name in enumerate(distinct):
        profile = limits.for_satellite(name)
        signature = tuple((p.hard, tuple(sorted(p.bands.items()))) for p in profile)
        if signature not in profiles:
            profiles[signature] = len(resolved)
            resolved.append(profile)
        profile_of_name[position] = profiles[signature]
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    return profile_of_name[indices] if len(distinct) else indices.astype(np.int64), _bound_arrays(resolved)


def _outside(
    values: np.ndarray, bounds: _BoundArrays, rows: np.ndarray | None, profile: int, level: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which values lie below and above the band of ``level`` (0 = hard), and that band's ends."""
    low, high = bounds.low[profile, :, level], bounds.high[profile, :, level]
    low_inc, high_inc = bounds.low_inclusive[profile, :, level], bounds.high_inclusive[profile, :, level]
    part = values if rows is None else values[rows]
    below = part < low if low_inc.all() else np.where(low_inc, part < low, part <= low)
    above = part > high if high_inc.all() else np.where(high_inc, part > high, part >= high)
    return below, above, low, high


def hard_limit_breaches(limits: TelemetryLimits, names: pa.Array, values: np.ndarray) -> np.ndarray:
    """Which readings of satellites ``names`` with ``values`` (shape (n, len(MEASURES))) have a value outside
    its hard range (bool, shape (n,)); vectorised per distinct set of limits. NaN is outside nothing."""
    hard = np.zeros(len(values), bool)
    if len(values) == 0:
        return hard
    profile_index, bounds = _satellite_profiles(limits, names)
    for profile, rows in _profile_rows(profile_index, bounds):
        if not bounds.has_band(profile, 0):
            continue
        below, above, _, _ = _outside(values, bounds, rows, profile, 0)
        hard[slice(None) if rows is None else rows] = (below | above).any(axis=1)
    return hard


def alarm_columns(limits: TelemetryLimits, names: pa.Array, values: np.ndarray) -> AlarmColumns:
    """Every value's alarm level and the limit it crossed, for readings of satellites ``names`` with
    ``values`` (shape (n, len(MEASURES))), vectorised per distinct set of limits. NaN raises no alarm."""
    n = len(values)
    levels = np.zeros((n, len(MEASURES)), np.int8)
    crossed = np.full((n, len(MEASURES)), np.nan)
    if n == 0:
        return AlarmColumns(levels, crossed)
    profile_index, bounds = _satellite_profiles(limits, names)
    for profile, rows in _profile_rows(profile_index, bounds):
        shape = (n if rows is None else len(rows), len(MEASURES))
        level_part = levels if rows is None else np.zeros(shape, np.int8)
        limit_part = crossed if rows is None else np.full(shape, np.nan)
        for level in range(1, len(SEVERITIES) + 1):  # mildest first: the worst band a value is outside of wins
            if not bounds.has_band(profile, level):
                continue
            below, above, low, high = _outside(values, bounds, rows, profile, level)
            outside = below | above
            if not outside.any():
                continue
            np.copyto(level_part, np.int8(level), where=outside)
            np.copyto(limit_part, np.broadcast_to(low, shape), where=below)
            np.copyto(limit_part, np.broadcast_to(high, shape), where=above)
        if rows is not None:
            levels[rows] = level_part
            crossed[rows] = limit_part
    return AlarmColumns(levels, crossed)


def _profile_rows(profile_index: np.ndarray, bounds: _BoundArrays) -> list[tuple[int, np.ndarray | None]]:
    """(profile, its rows) for every profile; rows None when one profile covers every reading (no copy)."""
    count = bounds.low.shape[0]
    if count == 1:
        return [(0, None)]
    return [(profile, np.flatnonzero(profile_index == profile)) for profile in range(count)]


def alarm_level(limits: ParameterLimits, value: float) -> tuple[str | None, float | None]:
    """The severity of ``value`` against one parameter's bands and the limit crossed (None, None: within)."""
    worst: tuple[str | None, float | None] = (None, None)
    if not math.isfinite(value):
        return worst
    for severity in SEVERITIES:
        band = limits.bands.get(severity)
        bound = band.crossed(value) if band is not None else None
        if bound is not None:
            worst = (severity, bound.value)
    return worst
