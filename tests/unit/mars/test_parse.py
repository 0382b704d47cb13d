"""Bronze rows from raw Mars responses: manifests, photo pages in both rover shapes and MMGIS waypoints, every kind
of bad record rejected alone with its reason, and whole-body rejects (error answers, truncated or non-JSON bodies,
wrong shapes) that never raise. Inputs are built here; the recorded fixtures are only checked when present."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import shapely
from shapely.geometry import Point

from satlake.mars.geodesy import MARS_CRS_CODE, geodesic_m
from satlake.mars.parse import ParseResult, parse_manifest, parse_photos
from satlake.mars.parse_waypoints import MAX_KM_FROM_LANDING, parse_waypoints
from satlake.mars.rovers import ROVERS, rover_named
from satlake.mars.tables import MARS_MANIFESTS_SCHEMA, MARS_PHOTOS_SCHEMA, MARS_WAYPOINTS_SCHEMA

FETCHED = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mars"
RATE_LIMITED = {
    "error": {
        "code": "OVER_RATE_LIMIT",
        "message": "You have exceeded your rate limit. Try again later or contact us at "
        "https://api.nasa.gov:443/contact/ for assistance",
    }
}
BAD_ROVER = {"errors": "Invalid Rover Name"}
NOT_A_PAGE = "not a photo page: expected an object with a 'photos' array"

MANIFEST_COLUMNS = [
    "rover_name", "sol", "earth_date", "total_photos", "cameras", "max_sol", "max_date", "status",
    "manifest_total_photos", "response_id", "fetched_at",
]  # fmt: skip
PHOTO_COLUMNS = [
    "id", "rover_name", "sol", "earth_date", "camera_name", "camera_full_name", "img_src", "rover_shape", "page",
    "response_id", "fetched_at",
]  # fmt: skip
WAYPOINT_COLUMNS = [
    "rover_name", "mission", "sol", "site", "drive", "lon", "lat", "elev_geoid_m", "dist_m", "dist_total_m",
    "segment_m", "crs", "geometry_wkb", "response_id", "fetched_at",
]  # fmt: skip


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


def manifest(sols: list[dict[str, Any]] | None = None, **header: Any) -> dict[str, Any]:
    content = {
        "name": "Curiosity",
        "landing_date": "2012-08-06",
        "launch_date": "2011-11-26",
        "status": "active",
        "max_sol": 4102,
        "max_date": "2024-02-19",
        "total_photos": 695670,
        "photos": sols
        if sols is not None
        else [
            {"sol": 0, "earth_date": "2012-08-06", "total_photos": 3702, "cameras": ["CHEMCAM", "FHAZ", "MARDI"]},
            {"sol": 1000, "earth_date": "2015-05-30", "total_photos": 5, "cameras": ["FHAZ", "NAVCAM"]},
        ],
    }
    content.update(header)
    return {"photo_manifest": content}


def curiosity_photo(photo_id: int, sol: int = 1000, camera: str = "FHAZ", **changes: Any) -> dict[str, Any]:
    """A photo record with the short rover object, as curiosity pages come."""
    record = {
        "id": photo_id,
        "sol": sol,
        "camera": {"id": 20, "name": camera, "rover_id": 5, "full_name": "Front Hazard Avoidance Camera"},
        "img_src": "http://mars.jpl.nasa.gov/msl-raw-images/proj/msl/redops/ods/surface/sol/01000/opgs/edr/fcam/"
        f"FLB_{photo_id}EDR_F0481570FHAZ00323M_.JPG",
        "earth_date": "2015-05-30",
        "rover": {"id": 5, "name": "Curiosity", "landing_date": "2012-08-06", "launch_date": "2011-11-26",
                  "status": "active"},
    }  # fmt: skip
    record.update(changes)
    return record


def perseverance_photo(photo_id: int, sol: int = 100, **changes: Any) -> dict[str, Any]:
    """A photo record with the long rover object (max_sol, cameras), as perseverance pages come."""
    record = {
        "id": photo_id,
        "sol": sol,
        "camera": {"id": 42, "name": "NAVCAM_LEFT", "rover_id": 8, "full_name": "Navigation Camera - Left"},
        "img_src": "https://mars.nasa.gov/mars2020-raw-images/pub/ods/surface/sol/00100/ids/edr/browse/ncam/"
        f"NLF_0100_{photo_id}_512ECM_N0040390NCAM00502_01_295J01_1200.jpg",
        "earth_date": "2021-05-30",
        "rover": {
            "id": 8, "name": "Perseverance", "landing_date": "2021-02-18", "launch_date": "2020-07-30",
            "status": "active", "max_sol": 1000, "max_date": "2023-12-19", "total_photos": 200000,
            "cameras": [{"name": "NAVCAM_LEFT", "full_name": "Navigation Camera - Left"}],
        },
    }  # fmt: skip
    record.update(changes)
    return record


def waypoint(lon: float, lat: float, sol: int, site: int = 3, drive: int = 0, **properties: Any) -> dict[str, Any]:
    props = {"RMC": f"{site}_{drive}", "site": site, "drive": drive, "sol": sol, "elev_geoid": -2569.9,
             "lon": lon, "lat": lat, "dist_m": 0.0, "dist_total_m": 0.0, "Note": ""}  # fmt: skip
    props.update(properties)
    return {"type": "Feature", "properties": props, "geometry": {"type": "Point", "coordinates": [lon, lat, -2569.9]}}


def collection(*features: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def only_reject(result: ParseResult) -> tuple[str, str]:
    assert result.rows == [], result.rows
    assert len(result.rejects) == 1, result.rejects
    return result.rejects[0]


# --- manifests -----------------------------------------------------------------------------------------------------


def test_manifest_rows() -> None:
    result = parse_manifest(body(manifest()), "Curiosity", "resp-1", FETCHED)
    assert result.rejects == [] and result.warnings == []
    assert [list(row) for row in result.rows] == [MANIFEST_COLUMNS] * 2
    assert result.rows[1] == {
        "rover_name": "curiosity",
        "sol": 1000,
        "earth_date": date(2015, 5, 30),
        "total_photos": 5,
        "cameras": ["FHAZ", "NAVCAM"],
        "max_sol": 4102,
        "max_date": date(2024, 2, 19),
        "status": "active",
        "manifest_total_photos": 695670,
        "response_id": "resp-1",
        "fetched_at": FETCHED,
    }


def test_manifest_bad_sol_entries_are_rejected_alone() -> None:
    good = {"sol": 10, "earth_date": "2012-08-16", "total_photos": 3, "cameras": ["NAVCAM"]}
    sols = [
        good,
        {"sol": 4200, "earth_date": "2024-06-01", "total_photos": 1, "cameras": ["NAVCAM"]},
        {"sol": 11, "earth_date": "yesterday", "total_photos": 1, "cameras": ["NAVCAM"]},
        {"sol": 12, "earth_date": "2012-08-18", "total_photos": -1, "cameras": ["NAVCAM"]},
        {"sol": 13, "earth_date": "2012-08-19", "total_photos": 1, "cameras": "NAVCAM"},
        {"earth_date": "2012-08-19", "total_photos": 1, "cameras": []},
        dict(good, total_photos=99),
        "sol 14",
    ]
    result = parse_manifest(body(manifest(sols)), rover_named("curiosity"), "resp-1", FETCHED)
    assert [row["sol"] for row in result.rows] == [10]
    assert result.rows[0]["total_photos"] == 3
    reasons = [reason for _record, reason in result.rejects]
    assert reasons == [
        "curiosity manifest: sol 4200 is after the manifest's max_sol 4102",
        "curiosity manifest: sol 11: earth_date 'yesterday' is not a date",
        "curiosity manifest: sol 12: total_photos -1 is not a count",
        "curiosity manifest: sol 13: cameras 'NAVCAM' is not a list of camera names",
        "curiosity manifest: sol None is not a sol number",
        "curiosity manifest: sol 10 is listed twice (first kept)",
        "curiosity manifest: a sol entry is a JSON string, not an object",
    ]
    assert json.loads(result.rejects[0][0])["sol"] == 4200


def test_manifest_of_another_rover_or_malformed_header() -> None:
    _record, reason = only_reject(parse_manifest(body(manifest()), "perseverance", "r", FETCHED))
    assert reason == "the manifest is for rover 'Curiosity', but perseverance's manifest was requested"
    _record, reason = only_reject(
        parse_manifest(body(manifest(max_sol="lots", max_date=None)), "curiosity", "r", FETCHED)
    )
    assert reason == "curiosity's manifest is malformed: max_sol 'lots' is not a sol; max_date None is not a date"


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (
            RATE_LIMITED,
            "the API answered with an error: OVER_RATE_LIMIT: You have exceeded your rate limit. Try again later "
            "or contact us at https://api.nasa.gov:443/contact/ for assistance",
        ),
        (BAD_ROVER, "the API answered with an error: Invalid Rover Name"),
        (
            {"manifest": {}},
            "not a photo manifest: expected an object with a 'photo_manifest' object, got keys ['manifest']",
        ),
        ([1, 2], "not a photo manifest: expected an object with a 'photo_manifest' object, got a JSON array"),
    ],
)
def test_manifest_error_and_wrong_shape_bodies(document: Any, reason: str) -> None:
    record, got = only_reject(parse_manifest(body(document), "curiosity", "r", FETCHED))
    assert got == reason
    assert json.loads(record) == document


# --- bodies that are not JSON ---------------------------------------------------------------------------------------


def test_truncated_json_is_one_reject_for_every_parser() -> None:
    whole = body({"photos": [curiosity_photo(1), curiosity_photo(2)]})
    cut = whole[: len(whole) // 2]
    for result in (
        parse_photos(cut, "curiosity", 1000, 1, "r", FETCHED),
        parse_manifest(body(manifest())[:-7], "curiosity", "r", FETCHED),
        parse_waypoints(body(collection(waypoint(77.4509, 18.4447, 14)))[:-3], "perseverance", "M20", "r", FETCHED),
    ):
        _record, reason = only_reject(result)
        assert reason.startswith("truncated JSON: "), reason
        assert " at char " in reason and "body was cut short" in reason
    record, _reason = only_reject(parse_photos(cut, "curiosity", 1000, 1, "r", FETCHED))
    assert record == cut.decode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "the photo page body is not JSON: Expecting value at char 0"),
        (b"", "the photo page body is empty; expected JSON"),
        (b"\xff\xfe{", "the photo page body is not UTF-8 text"),
        (b'{"photos": []} trailing', "the photo page body is not JSON: Extra data at char 15"),
        (b"null", "not a photo page: expected an object with a 'photos' array, got a JSON null"),
    ],
)
def test_non_json_bodies(raw: bytes, reason: str) -> None:
    _record, got = only_reject(parse_photos(raw, "curiosity", 1000, 1, "r", FETCHED))
    assert got.startswith(reason), got


# --- photo pages ----------------------------------------------------------------------------------------------------


def test_short_rover_shape_rows() -> None:
    page = body({"photos": [curiosity_photo(102693), curiosity_photo(102694, camera="NAVCAM")]})
    result = parse_photos(page, "curiosity", 1000, 2, "resp-7", FETCHED, max_sol=4102)
    assert result.rejects == []
    assert [list(row) for row in result.rows] == [PHOTO_COLUMNS] * 2
    assert result.rows[0] == {
        "id": 102693,
        "rover_name": "curiosity",
        "sol": 1000,
        "earth_date": date(2015, 5, 30),
        "camera_name": "FHAZ",
        "camera_full_name": "Front Hazard Avoidance Camera",
        "img_src": curiosity_photo(102693)["img_src"],
        "rover_shape": "short",
        "page": 2,
        "response_id": "resp-7",
        "fetched_at": FETCHED,
    }
    assert result.rows[1]["camera_name"] == "NAVCAM"


def test_long_rover_shape_rows() -> None:
    result = parse_photos(
        body({"photos": [perseverance_photo(1_000_001)]}), ROVERS["perseverance"], 100, 1, "r", FETCHED
    )
    assert result.rejects == []
    (row,) = result.rows
    assert row["rover_shape"] == "long"
    assert row["rover_name"] == "perseverance"
    assert row["camera_name"] == "NAVCAM_LEFT"
    assert row["earth_date"] == date(2021, 5, 30)
    assert row["img_src"].startswith("https://mars.nasa.gov/mars2020-raw-images/")


def test_empty_page_past_the_end() -> None:
    assert parse_photos(body({"photos": []}), "curiosity", 1000, 9, "r", FETCHED) == ParseResult()


def test_each_bad_photo_record_is_rejected_alone() -> None:
    no_id = curiosity_photo(0)
    del no_id["id"]
    no_src = curiosity_photo(3)
    del no_src["img_src"]
    records = [
        curiosity_photo(1),
        "not a photo",
        no_id,
        no_src,
        curiosity_photo(4, img_src="file:///etc/passwd"),
        curiosity_photo(5, img_src="mars.jpl.nasa.gov/no-scheme.jpg"),
        curiosity_photo(6, sol=999),
        curiosity_photo(7, rover={"id": 6, "name": "Opportunity", "status": "complete"}),
        curiosity_photo(8, rover=None),
        curiosity_photo(9, camera={"id": 1}),
        curiosity_photo(10, earth_date="30/05/2015"),
        curiosity_photo(1, camera="NAVCAM"),  # a duplicate id
        curiosity_photo(11, id=True),
        curiosity_photo(2),
    ]
    result = parse_photos(body({"photos": records}), "curiosity", 1000, 1, "r", FETCHED)
    assert [row["id"] for row in result.rows] == [1, 2]
    assert result.rows[0]["camera_name"] == "FHAZ"  # the first of the duplicates is kept
    prefix = "curiosity sol 1000 page 1: "
    reasons = [reason.removeprefix(prefix) for _record, reason in result.rejects]
    assert reasons == [
        "a photo record is a JSON string, not an object",
        "photo has no integer id (id=None)",
        "photo 3 has no img_src",
        "photo 4 img_src 'file:///etc/passwd' is not an http(s) URL",
        "photo 5 img_src 'mars.jpl.nasa.gov/no-scheme.jpg' is not an http(s) URL",
        "photo 6 is from sol 999, but the page was requested for sol 1000",
        "photo 7 belongs to rover 'Opportunity', but the page was requested for curiosity",
        "photo 8 has no rover object with a name",
        "photo 9 has no camera name",
        "photo 10 earth_date '30/05/2015' is not a date",
        "photo 1 appears twice on the page (first kept)",
        "photo has no integer id (id=True)",
    ]
    assert all(reason.startswith(prefix) for _record, reason in result.rejects)
    assert json.loads(result.rejects[0][0]) == "not a photo"
    assert json.loads(result.rejects[10][0])["camera"]["name"] == "NAVCAM"


def test_sol_after_max_sol_rejects_the_whole_page() -> None:
    page = body({"photos": [curiosity_photo(1, sol=4200), curiosity_photo(2, sol=4200)]})
    result = parse_photos(page, "curiosity", 4200, 1, "r", FETCHED, max_sol=4102)
    assert result.rows == []
    assert [reason for _record, reason in result.rejects] == [
        "sol 4200 is after the rover's latest sol 4102 (manifest of curiosity)"
    ] * 2
    assert parse_photos(page, "curiosity", 4200, 1, "r", FETCHED, max_sol=4200).rejects == []


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (RATE_LIMITED, "the API answered with an error: OVER_RATE_LIMIT: You have exceeded your rate limit."),
        ({"error": {"code": "API_KEY_INVALID", "message": "An invalid api_key was supplied."}},
         "the API answered with an error: API_KEY_INVALID: An invalid api_key was supplied."),
        (BAD_ROVER, "the API answered with an error: Invalid Rover Name"),
        ({"latest_photos": []}, f"{NOT_A_PAGE}, got keys ['latest_photos']"),
        ({"photos": {"id": 1}}, f"{NOT_A_PAGE}, got keys ['photos']"),
        ("photos", f"{NOT_A_PAGE}, got a JSON string"),
    ],
)  # fmt: skip
def test_photo_error_and_wrong_shape_bodies(document: Any, reason: str) -> None:
    record, got = only_reject(parse_photos(body(document), "curiosity", 1000, 1, "r", FETCHED))
    assert got.startswith(reason), got
    assert json.loads(record) == document


def test_long_rejected_bodies_are_cut() -> None:
    document = {"unexpected": "x" * 10_000}
    record, _reason = only_reject(parse_photos(body(document), "curiosity", 1000, 1, "r", FETCHED))
    assert len(record) < 4100
    assert record.endswith(" chars, cut)")


# --- waypoints ------------------------------------------------------------------------------------------------------


def test_waypoint_rows_and_segments() -> None:
    points = [(77.4509, 18.4447, 14), (77.4520, 18.4450, 15), (77.4560, 18.4470, 15), (77.4600, 18.4400, 20)]
    features = [waypoint(lon, lat, sol, drive=index * 10) for index, (lon, lat, sol) in enumerate(points)]
    features[1]["properties"].update(dist_m=66.5, dist_total_m=66.5, elev_geoid=None)
    result = parse_waypoints(body(collection(*features)), "perseverance", "M20", "resp-w", FETCHED)
    assert result.rejects == [] and result.warnings == []
    assert [list(row) for row in result.rows] == [WAYPOINT_COLUMNS] * 4
    first, second = result.rows[0], result.rows[1]
    assert first["segment_m"] is None
    assert first["rover_name"] == "perseverance" and first["mission"] == "M20"
    assert (first["sol"], first["site"], first["drive"]) == (14, 3, 0)
    assert first["crs"] == MARS_CRS_CODE == "IAU_2015:49902"
    assert shapely.from_wkb(first["geometry_wkb"]).equals(Point(77.4509, 18.4447))
    assert first["elev_geoid_m"] == -2569.9 and second["elev_geoid_m"] is None
    assert (second["dist_m"], second["dist_total_m"]) == (66.5, 66.5)
    for previous, row in zip(result.rows, result.rows[1:], strict=False):
        assert row["segment_m"] == pytest.approx(geodesic_m(previous["lon"], previous["lat"], row["lon"], row["lat"]))
    assert 60 < second["segment_m"] < 75  # ~0.0011° of longitude on Mars at 18°N
    assert (first["response_id"], first["fetched_at"]) == ("resp-w", FETCHED)


def test_lon_over_180_is_normalised() -> None:
    # Opportunity's landing site at 354.47 E; a waypoint given 0..360 lands in -180..180.
    features = [waypoint(137.4417, -4.5895, 0), waypoint(350.0, 0.0, 1)]
    result = parse_waypoints(body(collection(*features)), "curiosity", "MSL", "r", FETCHED)
    assert len(result.rejects) == 1  # 350 E is -10 E: thousands of km from Gale
    rover = ROVERS["opportunity"]
    near = waypoint(360.0 + rover.landing_lon + 0.01, rover.landing_lat, 3)
    result = parse_waypoints(body(collection(near)), rover, "MER1", "r", FETCHED)
    assert result.rejects == []
    (row,) = result.rows
    assert row["lon"] == pytest.approx(rover.landing_lon + 0.01)
    assert -180 <= row["lon"] <= 180
    assert shapely.from_wkb(row["geometry_wkb"]).x == pytest.approx(row["lon"])
    flipped = parse_waypoints(body(collection(waypoint(350.0, 18.0, 1))), "perseverance", "M20", "r", FETCHED)
    assert "at (-10.0000, 18.0000)" in flipped.rejects[0][1]


def test_earth_range_waypoint_is_rejected() -> None:
    berlin = waypoint(13.4, 52.5, 15)
    result = parse_waypoints(
        body(collection(waypoint(77.4509, 18.4447, 14), berlin, waypoint(77.4520, 18.4450, 16))),
        "perseverance",
        "M20",
        "r",
        FETCHED,
    )
    assert [row["sol"] for row in result.rows] == [14, 16]
    (record, reason) = result.rejects[0]
    assert reason.startswith("M20 waypoint 1: waypoint at (13.4000, 52.5000) is ")
    assert reason.endswith(" km from Perseverance's landing site; coordinates of another body or CRS?")
    km = float(reason.split(" is ")[1].split(" km")[0])
    assert km > MAX_KM_FROM_LANDING == 200.0
    assert json.loads(record)["properties"]["lat"] == 52.5
    # the segment after a rejected waypoint starts at the previous kept one
    assert result.rows[1]["segment_m"] == pytest.approx(geodesic_m(77.4509, 18.4447, 77.4520, 18.4450))


def test_bad_waypoints_are_rejected_alone() -> None:
    no_sol = waypoint(77.4509, 18.4447, 14)
    del no_sol["properties"]["sol"]
    no_site = waypoint(77.4509, 18.4447, 14)
    no_site["properties"].update(site=None, drive=None, RMC="")
    rmc_only = waypoint(77.4512, 18.4448, 14)
    rmc_only["properties"].update(site=None, drive=None, RMC="4_120")
    line = {"type": "Feature", "properties": {"sol": 1}, "geometry": {"type": "LineString", "coordinates": []}}
    features = [
        waypoint(77.4509, 18.4447, 14),
        waypoint(77.4509, 95.0, 14),
        waypoint(77.4509, -90.5, 14),
        waypoint(400.0, 18.4447, 14),
        waypoint(-200.0, 18.4447, 14),
        waypoint(math.nan, 18.4447, 14),
        waypoint(77.4509, math.inf, 14),
        no_sol,
        no_site,
        line,
        "not a feature",
        rmc_only,
    ]
    result = parse_waypoints(body(collection(*features)), "perseverance", "M20", "r", FETCHED)
    assert [(row["site"], row["drive"]) for row in result.rows] == [(3, 0), (4, 120)]
    assert [reason for _record, reason in result.rejects] == [
        "M20 waypoint 1: latitude 95.0 is outside -90..90",
        "M20 waypoint 2: latitude -90.5 is outside -90..90",
        "M20 waypoint 3: longitude 400.0 is outside -180..360",
        "M20 waypoint 4: longitude -200.0 is outside -180..360",
        "M20 waypoint 5: coordinates (nan, 18.4447) are not finite",
        "M20 waypoint 6: coordinates (77.4509, inf) are not finite",
        "M20 waypoint 7: waypoint has no sol (sol=None)",
        "M20 waypoint 8: waypoint has no site/drive (site=None, RMC='')",
        "M20 waypoint 9: the geometry is LineString, not a Point",
        "M20 waypoint 10: a feature is a JSON string, not an object",
    ]
    # the record of a non-finite waypoint is still strict JSON (NaN kept as a string)
    assert json.loads(result.rejects[4][0])["geometry"]["coordinates"][0] == "nan"


def test_non_monotonic_sol_is_kept_with_a_warning() -> None:
    features = [waypoint(77.4509, 18.4447, 20, drive=0), waypoint(77.4520, 18.4450, 18, drive=10)]
    result = parse_waypoints(body(collection(*features)), "perseverance", "M20", "r", FETCHED)
    assert result.rejects == []
    assert [row["sol"] for row in result.rows] == [20, 18]
    assert result.warnings == [
        "M20 waypoint 1 (site 3 drive 10) has sol 18, before the previous waypoint's sol 20: "
        "the traverse is not in sol order"
    ]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (RATE_LIMITED, "the API answered with an error: OVER_RATE_LIMIT: "),
        ({"type": "Feature", "geometry": None}, "not a waypoints FeatureCollection: expected an object with a "
         "'features' array, got keys ['geometry', 'type']"),
    ],
)  # fmt: skip
def test_waypoint_error_and_wrong_shape_bodies(document: Any, reason: str) -> None:
    _record, got = only_reject(parse_waypoints(body(document), "perseverance", "M20", "r", FETCHED))
    assert got.startswith(reason), got


def test_rows_fit_the_bronze_arrow_schemas() -> None:
    """The rows convert to the bronze tables' arrow schemas as they are: same names, compatible Python types."""
    cases = [
        (parse_manifest(body(manifest()), "curiosity", "r", FETCHED), MARS_MANIFESTS_SCHEMA),
        (
            parse_photos(
                body({"photos": [curiosity_photo(1), curiosity_photo(2)]}), "curiosity", 1000, 1, "r", FETCHED
            ),
            MARS_PHOTOS_SCHEMA,
        ),
        (
            parse_waypoints(
                body(collection(waypoint(77.4509, 18.4447, 14), waypoint(77.4520, 18.4450, 15))),
                "perseverance",
                "M20",
                "r",
                FETCHED,
            ),
            MARS_WAYPOINTS_SCHEMA,
        ),
    ]
    for result, schema in cases:
        assert result.rows and not result.rejects
        assert [list(row) for row in result.rows] == [schema.names] * len(result.rows)
        table = pa.Table.from_pylist(result.rows, schema=schema)
        assert table.num_rows == len(result.rows)
        assert table.to_pylist() == result.rows


# --- recorded fixtures (helper A), when present ---------------------------------------------------------------------


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"no recorded Mars fixtures at {FIXTURES}")
def test_recorded_fixtures_parse_cleanly() -> None:
    for path in sorted((FIXTURES / "manifests").glob("*.json")):
        result = parse_manifest(path.read_bytes(), path.stem, "r", FETCHED)
        assert result.rows and not result.rejects, (path, result.rejects[:3])
    for path in sorted((FIXTURES / "photos").glob("*/sol-*-page-*.json")):
        sol, page = int(path.stem.split("-")[1]), int(path.stem.split("-")[3])
        result = parse_photos(path.read_bytes(), path.parent.name, sol, page, "r", FETCHED)
        assert not result.rejects, (path, result.rejects[:3])
    missions = {rover.mmgis_mission: rover for rover in ROVERS.values() if rover.mmgis_mission}
    for path in sorted((FIXTURES / "waypoints").glob("*_waypoints.json")):
        mission = path.name.removesuffix("_waypoints.json")
        result = parse_waypoints(path.read_bytes(), missions[mission], mission, "r", FETCHED)
        assert result.rows and not result.rejects and not result.warnings, (path, result.rejects[:3], result.warnings)
    for path in sorted((FIXTURES / "errors").glob("*.json")):
        result = parse_photos(path.read_bytes(), "curiosity", 1000, 1, "r", FETCHED)
        assert not result.rows and len(result.rejects) == 1, path
