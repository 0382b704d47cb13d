"""The acquisition time a user supplies for a raster that carries none: parsing ``--datetime`` and
``<file>.datetime.json`` sidecars, grouping a sidecar with its raster (landed together or one after the other),
the sensor's plan for a sidecar landed afterwards, and the time read into the scene's metadata."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from satlake.resources.event_log import LogRecord
from satlake.resources.object_events import object_created_event
from satlake.scenes.grouping import group_scene_files, is_geotiff_scene_key, scene_id_for_key
from satlake.scenes.raster import read_scene_metadata
from satlake.scenes.sensors import SensorCursor, plan_scenes, scene_run_key
from satlake.scenes.sidecar import (
    ACQUIRED_AT_FROM_EXTRA,
    REPLACED_TIME_EXTRA,
    UNREADABLE_TIME_EXTRA,
    AcquisitionTimeError,
    missing_time_reason,
    parse_acquisition_time,
    parse_sidecar,
    raster_key_of_sidecar,
    sidecar_document,
    sidecar_name_for,
    write_sidecar,
)

MOMENT = datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
BUCKET = "satlake-landing"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def untimed_raster(path: Path, **tags: str) -> Path:
    """A small GeoTIFF on lon/lat with no ACQUISITION_TIME or TIFFTAG_DATETIME (unless given in ``tags``)."""
    profile = {"driver": "GTiff", "dtype": "uint16", "count": 1, "width": 16, "height": 16, "crs": "EPSG:4326",
               "transform": from_origin(10.0, 50.0, 0.01, 0.01), "nodata": 0}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.arange(1, 257, dtype="uint16").reshape(1, 16, 16))
        if tags:
            dst.update_tags(**tags)
    return path


# --- parsing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["2024-05-01T10:30:00Z", "2024-05-01t10:30:00z", "2024-05-01T12:30:00+02:00", "2024-05-01T10:30:00",
     "2024-05-01 10:30", " 2024-05-01T10:30:00.000Z ", "20240501T103000Z"],
)  # fmt: skip
def test_accepted_times_are_utc(text: str) -> None:
    moment = parse_acquisition_time(text)
    assert moment == MOMENT and moment.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["2024-05-01", "yesterday", "", "2024-13-01T10:00:00Z", "2024:05:01 10:30:00", "0001-01-01T00:00+01:00"]
)
def test_refused_times_name_the_accepted_formats(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601") as error:
        parse_acquisition_time(text)
    assert "2024-05-01T10:30:00Z" in str(error.value) and "T00:00:00Z" in str(error.value)


def test_sidecar_forms() -> None:
    assert parse_sidecar("x.tif.datetime.json", sidecar_document(MOMENT)) == MOMENT
    assert json.loads(sidecar_document(MOMENT)) == {"datetime": "2024-05-01T10:30:00Z"}
    assert parse_sidecar("x.tif.datetime.json", '"2024-05-01T10:30:00Z"') == MOMENT
    assert parse_sidecar("x.tif.datetime.json", "2024-05-01T10:30:00Z\n") == MOMENT  # the bare time, hand-written


@pytest.mark.parametrize(
    ("text", "reason"),
    [('{"when": "2024-05-01T10:30:00Z"}', "no 'datetime' field"), ('{"datetime": 1714559400}', "is a int"),
     ('{"datetime": "May 1st"}', "is not an acquisition time"), ("[1, 2]", "is a list"), ("", "ISO 8601")],
)  # fmt: skip
def test_bad_sidecars_say_what_is_wrong_and_what_to_do(text: str, reason: str) -> None:
    with pytest.raises(AcquisitionTimeError, match=reason) as error:
        parse_sidecar("x.tif.datetime.json", text)
    assert "'x.tif.datetime.json'" in str(error.value) and "satlake put --datetime" in str(error.value)


def test_sidecar_names() -> None:
    assert sidecar_name_for("a/x.tif") == "a/x.tif.datetime.json"
    assert raster_key_of_sidecar("a/x.tif.datetime.json") == "a/x.tif"
    assert raster_key_of_sidecar("a/.datetime.json") is None and raster_key_of_sidecar("a/x.tif") is None


def test_missing_time_reason_tells_how_to_supply_it() -> None:
    reason = missing_time_reason(["hirise_mars.tif"])
    assert reason.startswith("no acquisition time: hirise_mars.tif has no ACQUISITION_TIME or TIFFTAG_DATETIME tag")
    assert "`satlake put --datetime 2024-05-01T10:30:00Z hirise_mars.tif`" in reason
    assert 'hirise_mars.tif.datetime.json holding {"datetime": "2024-05-01T10:30:00Z"}' in reason
    garbled = missing_time_reason(["x.tif"], {UNREADABLE_TIME_EXTRA: "TIFFTAG_DATETIME='soon'"})
    assert "TIFFTAG_DATETIME='soon' is not a date and time" in garbled


# --- grouping -----------------------------------------------------------------------------------------------


def test_a_sidecar_landed_with_its_raster_is_part_of_the_scene() -> None:
    (group,) = group_scene_files(["in/hirise.tif.datetime.json", "in/hirise.tif"])
    assert group.scene_id == "hirise" and group.complete and not group.problems and group.kind == "geotiff"
    assert group.files == ("in/hirise.tif", "in/hirise.tif.datetime.json")
    assert scene_id_for_key("in/hirise.tif.datetime.json") == "hirise"


def test_a_sidecar_landed_after_its_raster_brings_the_raster_back() -> None:
    landed = {"in/hirise.tif"}
    (waiting,) = group_scene_files(["in/hirise.tif.datetime.json"])  # no way to look: waits for the raster
    assert not waiting.complete and waiting.missing == ("hirise.tif",) and not waiting.problems
    (later,) = group_scene_files(["in/hirise.tif.datetime.json"], landed=landed.__contains__)
    assert later.complete and later.files == ("in/hirise.tif", "in/hirise.tif.datetime.json")
    (not_yet,) = group_scene_files(["in/hirise.tif.datetime.json"], landed=set().__contains__)
    assert not not_yet.complete and not_yet.missing == ("hirise.tif",)


def test_a_raster_landed_again_finds_the_sidecar_landed_before() -> None:
    landed = {"in/hirise.tif.datetime.json"}
    (group,) = group_scene_files(["in/hirise.tif"], landed=landed.__contains__)
    assert group.complete and group.files == ("in/hirise.tif", "in/hirise.tif.datetime.json")
    (alone,) = group_scene_files(["in/hirise.tif"], landed=set().__contains__)
    assert alone.complete and alone.files == ("in/hirise.tif",)


def test_sidecars_that_belong_to_no_single_geotiff_are_rejected_with_a_reason() -> None:
    pid = "LC08_L1TP_016037_20170813_20170814_01_RT"
    groups = group_scene_files([f"{pid}_B4.TIF.datetime.json", "notes.txt.datetime.json", "...datetime.json"])
    assert [g.kind for g in groups] == ["unrecognised"] * 3
    for group in groups:
        assert "is a datetime sidecar of" in group.problems[0] and "scene.tif.datetime.json" in group.problems[0]
    # A sidecar of another folder's raster of the same name is as ambiguous as two rasters of that name.
    (clash,) = group_scene_files(["a/x.tif", "b/x.tif.datetime.json"])
    assert not clash.complete and "2 GeoTIFFs share the scene id 'x'" in clash.problems[0]
    composed, decomposed = "forêt.tif.datetime.json", unicodedata.normalize("NFD", "forêt.tif.datetime.json")
    (twice,) = group_scene_files(["forêt.tif", composed, decomposed])
    assert not twice.complete and "landed 2 times" in twice.problems[0]


def test_only_single_geotiffs_take_a_datetime() -> None:
    assert is_geotiff_scene_key("in/hirise.tif") and is_geotiff_scene_key("x.TIFF")
    assert not is_geotiff_scene_key("LC08_L1TP_016037_20170813_20170814_01_RT_B4.TIF")
    assert not is_geotiff_scene_key("x.tif.datetime.json") and not is_geotiff_scene_key("x.jpg")


# --- the sensor's plan --------------------------------------------------------------------------------------


def record(offset: int, key: str, etag: str = "e1") -> LogRecord:
    event = object_created_event(BUCKET, key, 10, etag, NOW, f"{offset:X}")
    return LogRecord("satlake.object-events", 0, offset, int(NOW.timestamp() * 1000), key.encode(),
                     json.dumps(event).encode())  # fmt: skip


def test_a_sidecar_landed_afterwards_makes_a_new_run_of_the_scene() -> None:
    first = plan_scenes([record(0, "hirise.tif")], SensorCursor(), BUCKET, lambda key: "", NOW,
                        landed=set().__contains__)  # fmt: skip
    (raster_only,) = first.ready
    assert raster_only.files == ("hirise.tif",)
    # Landed before the raster (as `satlake put --datetime` does) and not yet announced: the raster waits for nothing.
    second = plan_scenes([record(1, "hirise.tif.datetime.json", "s1")], first.cursor, BUCKET, lambda key: "", NOW,
                         landed={"hirise.tif", "hirise.tif.datetime.json"}.__contains__)  # fmt: skip
    (with_time,) = second.ready
    assert with_time.files == ("hirise.tif", "hirise.tif.datetime.json") and second.cursor.pending == {}
    assert scene_run_key(with_time, second.etags) != scene_run_key(raster_only, first.etags)


def test_a_sidecar_whose_raster_is_still_uploading_waits_for_it() -> None:
    waiting = plan_scenes([record(0, "hirise.tif.datetime.json")], SensorCursor(), BUCKET, lambda key: "", NOW,
                          landed=set().__contains__)  # fmt: skip
    assert waiting.ready == [] and waiting.rejects == []
    assert list(waiting.cursor.pending) == ["hirise.tif.datetime.json"]
    done = plan_scenes([record(1, "hirise.tif")], waiting.cursor, BUCKET, lambda key: "", NOW,
                       landed=set().__contains__)  # fmt: skip
    (group,) = done.ready
    assert group.files == ("hirise.tif", "hirise.tif.datetime.json") and done.cursor.pending == {}


# --- metadata -----------------------------------------------------------------------------------------------


def test_a_raster_without_a_time_reads_with_none(tmp_path: Path) -> None:
    path = untimed_raster(tmp_path / "hirise.tif")
    meta = read_scene_metadata("hirise", "test", {path.name: path})
    assert meta.acquired_at is None and ACQUIRED_AT_FROM_EXTRA not in meta.extra
    garbled = untimed_raster(tmp_path / "garbled.tif", TIFFTAG_DATETIME="soon")
    meta = read_scene_metadata("garbled", "test", {garbled.name: garbled})
    assert meta.acquired_at is None and meta.extra[UNREADABLE_TIME_EXTRA] == "TIFFTAG_DATETIME='soon'"


def test_the_sidecar_gives_the_time_and_wins_over_a_tag(tmp_path: Path) -> None:
    path = untimed_raster(tmp_path / "hirise.tif")
    sidecar = write_sidecar(path, MOMENT, tmp_path / "put")
    files = {path.name: path, sidecar.name: sidecar}
    meta = read_scene_metadata("hirise", "test", files)
    assert meta.acquired_at == MOMENT and meta.extra[ACQUIRED_AT_FROM_EXTRA] == "hirise.tif.datetime.json"
    assert [f.name for f in meta.files] == ["hirise.tif", "hirise.tif.datetime.json"]  # kept and hashed
    assert [b.file for b in meta.bands] == ["hirise.tif"]  # never read as a band

    tagged = untimed_raster(tmp_path / "tagged.tif", ACQUISITION_TIME="2020-01-01T00:00:00Z")
    tagged_sidecar = write_sidecar(tagged, MOMENT, tmp_path / "put")
    meta = read_scene_metadata("tagged", "test", {tagged.name: tagged, tagged_sidecar.name: tagged_sidecar})
    assert meta.acquired_at == MOMENT and meta.extra[REPLACED_TIME_EXTRA] == "2020-01-01T00:00:00Z"


def test_a_bad_or_misnamed_sidecar_is_an_acquisition_time_error(tmp_path: Path) -> None:
    path = untimed_raster(tmp_path / "hirise.tif")
    bad = tmp_path / "hirise.tif.datetime.json"
    bad.write_text('{"datetime": "last tuesday"}')
    with pytest.raises(AcquisitionTimeError, match="'last tuesday' is not an acquisition time"):
        read_scene_metadata("hirise", "test", {path.name: path, bad.name: bad})
    other = write_sidecar(tmp_path / "other.tif", MOMENT, tmp_path / "put")
    with pytest.raises(AcquisitionTimeError, match=r"named after 'other\.tif', which is not a raster of this scene"):
        read_scene_metadata("hirise", "test", {path.name: path, other.name: other})
