"""Parsing Landsat MTL files: the real fixture and malformed text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from satlake.scenes.mtl import MtlParseError, landsat_metadata_from_mtl, parse_mtl

LANDSAT_PRODUCT_ID = "LC08_L1TP_016037_20170813_20170814_01_RT"


def test_real_mtl_fields(landsat_dir: Path) -> None:
    mtl = parse_mtl((landsat_dir / f"{LANDSAT_PRODUCT_ID}_MTL.txt").read_text())
    assert mtl["L1_METADATA_FILE"]["PRODUCT_METADATA"]["WRS_PATH"] == 16
    fields = landsat_metadata_from_mtl(mtl)
    assert fields["acquired_at"] == datetime(2017, 8, 13, 15, 54, 15, 788464, tzinfo=UTC)
    assert fields["platform"] == "landsat-8"
    assert fields["instrument"] == "oli_tirs"
    assert fields["cloud_cover"] == pytest.approx(26.70)
    assert fields["sun_azimuth"] == pytest.approx(126.81463739)
    assert fields["sun_elevation"] == pytest.approx(62.17310472)
    assert (fields["wrs_path"], fields["wrs_row"]) == (16, 37)
    assert fields["product_id"] == LANDSAT_PRODUCT_ID
    assert fields["processing_level"] == "L1TP"
    assert fields["band_files"]["B4"] == f"{LANDSAT_PRODUCT_ID}_B4.TIF"
    assert len(fields["band_files"]) == 11
    assert fields["reflectance"]["B5"] == (pytest.approx(2.0e-5), pytest.approx(-0.1))


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("GROUP = A\n  X = 1\nEND_GROUP = B\nEND\n", 3, "closes GROUP = A"),
        ("GROUP = A\n  this line has no equals\nEND_GROUP = A\n", 2, "KEY = VALUE"),
        ('GROUP = A\n  NAME = "unterminated\nEND_GROUP = A\n', 2, "unterminated"),
        ("GROUP = A\n  X = 1\n  X = 2\nEND_GROUP = A\n", 3, "duplicate key"),
        ("END_GROUP = A\n", 1, "without an open GROUP"),
        ("GROUP = A\nEND_GROUP = A\nEND\nGROUP = B\n", 4, "after END"),
    ],
)
def test_malformed_mtl_names_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(MtlParseError) as caught:
        parse_mtl(text)
    assert caught.value.line == line
    assert f"line {line}" in str(caught.value) and fragment in str(caught.value)


def test_truncated_and_empty_mtl_are_errors() -> None:
    with pytest.raises(MtlParseError, match="never closed"):
        parse_mtl("GROUP = L1_METADATA_FILE\n  GROUP = X\n    A = 1\n")
    with pytest.raises(MtlParseError, match="not an MTL file"):
        parse_mtl("\n\n")


def test_missing_acquisition_date_is_an_error() -> None:
    with pytest.raises(MtlParseError, match="DATE_ACQUIRED"):
        landsat_metadata_from_mtl(parse_mtl('GROUP = A\n  SPACECRAFT_ID = "LANDSAT_8"\nEND_GROUP = A\nEND\n'))
