"""XTCE absolute times to UTC: TAI with its leap seconds, GPS, UNIX/POSIX, J2000, ISO epochs, units, and the
errors for an epoch the loader cannot place."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from satlake.ground.epochs import (
    UnknownEpochError,
    iso_utc,
    posix_to_tai,
    resolve_epoch,
    tai_minus_utc,
    tai_to_posix,
)
from satlake.ground.xtce import MissionDefinitionError, load_mission_database

from .conftest import DEMOSAT_XML


def utc(*parts: int, micro: int = 0) -> datetime:
    return datetime(*parts, microsecond=micro, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("moment", "offset"),
    [
        (utc(1970, 6, 1), 10),
        (utc(1972, 1, 1), 10),
        (utc(1972, 7, 1), 11),
        (utc(1999, 1, 1), 32),
        (utc(2008, 12, 31, 23, 59, 59), 33),
        (utc(2009, 1, 1), 34),
        (utc(2016, 12, 31, 23, 59, 59), 36),
        (utc(2017, 1, 1), 37),
        (utc(2026, 3, 1), 37),
    ],
)
def test_tai_minus_utc_follows_the_leap_second_table(moment: datetime, offset: int) -> None:
    assert tai_minus_utc(moment) == offset


def test_tai_counts_from_1958_and_adds_the_leap_seconds() -> None:
    tai = resolve_epoch("TAI")
    # 24837 days from 1958-01-01 to 2026-01-01, plus TAI - UTC = 37 s
    assert tai.from_datetime(utc(2026, 1, 1)) == 24837 * 86400 + 37
    assert tai.to_datetime(24837 * 86400 + 37) == utc(2026, 1, 1)
    # one TAI second apart across the 2016 leap second: UTC repeats a second (POSIX has no 23:59:60)
    before = tai.from_datetime(utc(2016, 12, 31, 23, 59, 59))
    assert tai.to_datetime(before + 2) == utc(2017, 1, 1)
    assert tai.to_datetime(before + 3) == utc(2017, 1, 1, 0, 0, 1)
    assert tai.from_datetime(utc(2017, 1, 1)) - tai.from_datetime(utc(2016, 1, 1)) == 366 * 86400 + 1


@pytest.mark.parametrize(
    ("name", "seconds", "expected"),
    [
        ("GPS", 0, utc(1980, 1, 6)),
        ("GPS", 1_000_000_000, utc(2011, 9, 14, 1, 46, 25)),  # GPS - UTC was 15 s
        ("GPS", 1_451_260_818, utc(2026, 1, 1)),  # 18 s since 2017
        ("UNIX", 1_700_000_000, utc(2023, 11, 14, 22, 13, 20)),
        ("POSIX", 0.5, utc(1970, 1, 1, micro=500_000)),
        ("J2000", 0, utc(2000, 1, 1, 11, 58, 55, micro=816_000)),
        ("j2000", 86400 * 365, utc(2000, 12, 31, 11, 58, 55, micro=816_000)),  # no leap second in 2000
        ("2020-01-01", 3600, utc(2020, 1, 1, 1)),
        ("2020-01-01T12:00:00", 1.25, utc(2020, 1, 1, 12, 0, 1, micro=250_000)),
        ("2020-01-01T12:00:00+02:00", 0, utc(2020, 1, 1, 10)),
    ],
)
def test_named_and_iso_epochs(name: str, seconds: float, expected: datetime) -> None:
    epoch = resolve_epoch(name)
    assert epoch.to_datetime(seconds) == expected
    assert epoch.from_datetime(expected) == pytest.approx(seconds, abs=1e-6)


def test_gps_is_tai_minus_19_seconds() -> None:
    gps, tai = resolve_epoch("GPS"), resolve_epoch("TAI")
    moment = utc(2021, 6, 30, 8, 15)
    gps_seconds = gps.from_datetime(moment)
    assert tai.from_datetime(moment) - gps_seconds == pytest.approx(tai.from_datetime(utc(1980, 1, 6)) + 19)


def test_time_units_and_vectorised_conversion() -> None:
    days = resolve_epoch("2000-01-01").in_units("days")
    assert days.to_datetime(1.5) == utc(2000, 1, 2, 12)
    with pytest.raises(ValueError, match="months"):
        resolve_epoch("TAI").in_units("months")
    tai = resolve_epoch("TAI")
    counts = np.array([tai.from_datetime(utc(2016, 12, 31, 12)), np.nan, tai.from_datetime(utc(2026, 3, 1, 0, 0, 1))])
    out = tai.to_datetime64(counts)
    assert out[0] == np.datetime64("2016-12-31T12:00:00", "us")
    assert np.isnat(out[1])
    assert out[2] == np.datetime64("2026-03-01T00:00:01", "us")
    assert tai_to_posix(posix_to_tai(1_800_000_000.0)) == 1_800_000_000.0


def test_iso_text() -> None:
    assert iso_utc(1_772_366_400_250_000) == "2026-03-01T12:00:00.250000Z"
    assert iso_utc(0) == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize("text", ["MARS", "", None, "2020-13-01", "yesterday"])
def test_an_unknown_epoch_is_refused(text: str | None) -> None:
    with pytest.raises(UnknownEpochError):
        resolve_epoch(text)


def test_an_unknown_epoch_in_a_mission_database_names_file_type_and_line() -> None:
    xml = DEMOSAT_XML.read_bytes().replace(b"<xtce:Epoch>TAI</xtce:Epoch>", b"<xtce:Epoch>MARS_SOL</xtce:Epoch>")
    with pytest.raises(MissionDefinitionError) as error:
        load_mission_database(xml, name="demosat.xml")
    message = str(error.value)
    assert message.startswith("demosat.xml line ")
    assert "AbsoluteTimeParameterType 'CUC42_Type'" in message
    assert "'MARS_SOL'" in message
