"""XTCE absolute times to UTC: the named epochs of XTCE (TAI, GPS, UNIX/POSIX, J2000) and explicit ISO dates,
with the leap seconds between TAI and UTC. Pure functions, no I/O.

space_packet_parser returns an ``AbsoluteTimeParameterType`` value as float seconds since the type's epoch; this
module turns that count into POSIX time (seconds since 1970-01-01 UTC, without leap seconds), microseconds for
Arrow and numpy, and back (for the packet simulator).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import lru_cache

import numpy as np

# TAI - UTC after each leap second (IERS Bulletin C): (POSIX time of the UTC midnight it starts, seconds).
# 1972-01-01 starts the integer-second UTC; earlier instants use the 10 s of 1972 (the rubber-second UTC of the
# 1960s is not modelled).
LEAP_SECONDS: tuple[tuple[int, int], ...] = (
    (63072000, 10),  # 1972-01-01
    (78796800, 11),  # 1972-07-01
    (94694400, 12),  # 1973-01-01
    (126230400, 13),  # 1974-01-01
    (157766400, 14),  # 1975-01-01
    (189302400, 15),  # 1976-01-01
    (220924800, 16),  # 1977-01-01
    (252460800, 17),  # 1978-01-01
    (283996800, 18),  # 1979-01-01
    (315532800, 19),  # 1980-01-01
    (362793600, 20),  # 1981-07-01
    (394329600, 21),  # 1982-07-01
    (425865600, 22),  # 1983-07-01
    (489024000, 23),  # 1985-07-01
    (567993600, 24),  # 1988-01-01
    (631152000, 25),  # 1990-01-01
    (662688000, 26),  # 1991-01-01
    (709948800, 27),  # 1992-07-01
    (741484800, 28),  # 1993-07-01
    (773020800, 29),  # 1994-07-01
    (820454400, 30),  # 1996-01-01
    (867715200, 31),  # 1997-07-01
    (915148800, 32),  # 1999-01-01
    (1136073600, 33),  # 2006-01-01
    (1230768000, 34),  # 2009-01-01
    (1341100800, 35),  # 2012-07-01
    (1435708800, 36),  # 2015-07-01
    (1483228800, 37),  # 2017-01-01
)
_UTC_STARTS = tuple(start for start, _ in LEAP_SECONDS)
_OFFSETS = tuple(offset for _, offset in LEAP_SECONDS)
# The same instants on the TAI scale (POSIX-like seconds counted in TAI): where each offset starts to apply.
_TAI_STARTS = tuple(start + offset for start, offset in LEAP_SECONDS)
_TAI_STARTS_ARRAY = np.array(_TAI_STARTS, np.float64)
_OFFSETS_ARRAY = np.array((_OFFSETS[0], *_OFFSETS), np.float64)

TAI_1958_POSIX = -378691200  # 1958-01-01T00:00:00 as a POSIX count (4383 days before 1970)
GPS_1980_POSIX = 315964800  # 1980-01-06T00:00:00 UTC
GPS_MINUS_TAI = -19.0
J2000_UTC = datetime(2000, 1, 1, 11, 58, 55, 816000, tzinfo=UTC)  # 2000-01-01T12:00:00 TT
_J2000_POSIX = J2000_UTC.timestamp()

# XTCE time units (Encoding@units) in seconds; months and years have no fixed length and are refused.
TIME_UNITS = {None: 1.0, "": 1.0, "seconds": 1.0, "picoSeconds": 1e-12, "days": 86400.0}


class UnknownEpochError(ValueError):
    """An epoch that is neither a named XTCE epoch nor an ISO date or date-time."""


@dataclass(frozen=True)
class Epoch:
    """Where an XTCE time count starts and on which time scale it runs.

    ``scale`` is "TAI" when the count runs in SI seconds without leap seconds (TAI, GPS, J2000: the offset to UTC
    grows with every leap second), or "UTC" when it is a POSIX-style count (UNIX, POSIX and ISO epochs: every day
    has 86400 s). ``origin`` is the epoch on that scale, in POSIX-like seconds; ``unit`` the seconds per count
    unit (XTCE Encoding@units: 1 for seconds, 86400 for days).
    """

    name: str
    scale: str
    origin: float
    unit: float = 1.0

    def in_units(self, unit: str | None) -> Epoch:
        """This epoch with counts in an XTCE time unit (seconds, picoSeconds, days); ValueError for others."""
        return replace(self, unit=time_unit_seconds(unit))

    def to_posix(self, seconds: float) -> float:
        """POSIX time (UTC, seconds since 1970) of ``seconds`` counted from this epoch."""
        instant = self.origin + seconds * self.unit
        return tai_to_posix(instant) if self.scale == "TAI" else instant

    def from_posix(self, posix: float) -> float:
        """Seconds from this epoch of the POSIX time ``posix`` (the inverse of ``to_posix``)."""
        instant = posix_to_tai(posix) if self.scale == "TAI" else posix
        return (instant - self.origin) / self.unit

    def to_unix_us(self, seconds: float) -> int:
        """Microseconds since 1970-01-01 UTC (POSIX), rounded to the nearest microsecond."""
        return round(self.to_posix(seconds) * 1e6)

    def to_datetime(self, seconds: float) -> datetime:
        """The UTC datetime of ``seconds`` counted from this epoch (microsecond resolution)."""
        return datetime.fromtimestamp(self.to_unix_us(seconds) / 1e6, tz=UTC)

    def from_datetime(self, moment: datetime) -> float:
        """Seconds from this epoch of an aware datetime (naive ones are taken as UTC)."""
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return self.from_posix(aware.timestamp())

    def to_datetime64(self, seconds: np.ndarray) -> np.ndarray:
        """Vectorised ``to_datetime``: numpy datetime64[us] (UTC) of an array of counts; NaN gives NaT."""
        values = np.asarray(seconds, np.float64) * self.unit + self.origin
        posix = tai_to_posix_array(values) if self.scale == "TAI" else values
        micros = np.round(posix * 1e6)
        out = np.where(np.isfinite(micros), micros, 0).astype(np.int64).astype("datetime64[us]")
        out[~np.isfinite(micros)] = np.datetime64("NaT")
        return out


def tai_to_posix(tai: float) -> float:
    """UTC POSIX time of a TAI instant given as POSIX-like seconds on the TAI scale. A leap second itself
    (23:59:60 UTC) maps onto the first second of the next day, as POSIX time has no 61st second."""
    index = bisect.bisect_right(_TAI_STARTS, tai) - 1
    return tai - _OFFSETS[max(index, 0)]


def tai_to_posix_array(tai: np.ndarray) -> np.ndarray:
    """Vectorised ``tai_to_posix``."""
    return tai - _OFFSETS_ARRAY[np.searchsorted(_TAI_STARTS_ARRAY, tai, side="right")]


def posix_to_tai(posix: float) -> float:
    """TAI (POSIX-like seconds on the TAI scale) of a UTC POSIX time."""
    index = bisect.bisect_right(_UTC_STARTS, posix) - 1
    return posix + _OFFSETS[max(index, 0)]


def tai_minus_utc(moment: datetime) -> int:
    """TAI - UTC in seconds at a UTC moment (10 before 1972)."""
    return round(posix_to_tai(moment.timestamp()) - moment.timestamp())


@lru_cache(maxsize=64)
def resolve_epoch(text: str | None) -> Epoch:
    """The epoch an XTCE ``ReferenceTime/Epoch`` names: TAI, GPS, UNIX, POSIX, J2000 (case-insensitive), or an
    xs:date / xs:dateTime taken as UTC (an offset in the text is honoured). Raises ``UnknownEpochError``."""
    if text is None or not text.strip():
        raise UnknownEpochError("no epoch given (expected TAI, GPS, UNIX, POSIX, J2000 or an ISO date)")
    name = text.strip()
    named = {
        "TAI": Epoch("TAI", "TAI", float(TAI_1958_POSIX)),
        "GPS": Epoch("GPS", "TAI", GPS_1980_POSIX + 19.0),
        "UNIX": Epoch("UNIX", "UTC", 0.0),
        "POSIX": Epoch("POSIX", "UTC", 0.0),
        "J2000": Epoch("J2000", "TAI", posix_to_tai(_J2000_POSIX)),
    }
    if name.upper() in named:
        return named[name.upper()]
    try:
        moment = _parse_iso(name)
    except ValueError as exc:
        raise UnknownEpochError(
            f"unknown epoch {name!r} (expected TAI, GPS, UNIX, POSIX, J2000 or an ISO date such as 2000-01-01)"
        ) from exc
    return Epoch(name, "UTC", moment.timestamp())


def _parse_iso(text: str) -> datetime:
    if "T" not in text and len(text) <= 10:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def time_unit_seconds(unit: str | None) -> float:
    """Seconds per unit of an XTCE time Encoding@units; raises ValueError for months and years."""
    if unit not in TIME_UNITS:
        raise ValueError(f"time unit {unit!r} has no fixed length in seconds (use seconds, picoSeconds or days)")
    return TIME_UNITS[unit]


def iso_utc(unix_us: int) -> str:
    """ISO 8601 text of a POSIX microsecond count, in UTC with a Z."""
    whole, micros = divmod(unix_us, 1_000_000)
    text = datetime.fromtimestamp(whole, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{micros:06d}Z" if micros else f"{text}Z"
