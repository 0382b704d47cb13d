"""Areas of interest as a user gives them: GeoJSON and bbox parsing, every refusal with its message, and the
geodesic area in km²."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from shapely.geometry import MultiPolygon, Polygon, box

from satlake.acquisition.aoi import (
    AoiError,
    geodesic_area_km2,
    new_aoi,
    parse_bbox,
    parse_collections,
    parse_geojson,
)
from satlake.settings import Settings

SQUARE = [[[8.0, 48.0], [8.1, 48.0], [8.1, 48.1], [8.0, 48.1], [8.0, 48.0]]]
# A 1°x1° box on the equator: 111.32 km x 110.57 km on the WGS84 ellipsoid.
EQUATOR_DEGREE_KM2 = 12_308.78


def ellipsoid_cell_km2(south: float, north: float) -> float:
    """The area of a 1° wide cell between two parallels on the WGS84 ellipsoid (closed form, authalic q);
    an AOI's edges are geodesics instead of parallels, which moves its area by well under 1 km²."""
    a, f = 6_378_137.0, 1 / 298.257223563
    b, e = a * (1 - f), math.sqrt(f * (2 - f))

    def q(lat: float) -> float:
        s = math.sin(math.radians(lat))
        return s / (1 - (e * s) ** 2) + math.log((1 + e * s) / (1 - e * s)) / (2 * e)

    return math.radians(1) * b**2 / 2 * (q(north) - q(south)) / 1e6


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"SATLAKE_ROOT": str(tmp_path), **env})


def make(tmp_path: Path, geometry=None, name: str = "forest", **options):  # type: ignore[no-untyped-def]
    return new_aoi(settings(tmp_path), name, geometry if geometry is not None else box(8, 48, 8.1, 48.1),
                   created_by="tester", **options)  # fmt: skip


def test_a_one_degree_box_at_the_equator_has_its_geodesic_area(tmp_path: Path) -> None:
    aoi, source = make(tmp_path, parse_bbox("0,0,1,1"), name="equator")
    assert aoi.area_km2 == pytest.approx(EQUATOR_DEGREE_KM2, abs=0.5)
    assert aoi.bbox == (0.0, 0.0, 1.0, 1.0)
    assert source.url == "https://earth-search.aws.element84.com/v1"
    # Defaults: Sentinel-2 L2A, at most 30 % cloud, alerts from 1 ha.
    assert (aoi.collections, aoi.cloud_cover_max, aoi.alert_min_ha, aoi.source) == (
        ("sentinel-2-l2a",), 30.0, 1.0, "earth-search")  # fmt: skip
    assert aoi.created_by == "tester" and aoi.created_at.tzinfo is not None and aoi.removed_at is None


def test_area_shrinks_with_latitude_and_excludes_holes() -> None:
    at_60 = geodesic_area_km2(box(0, 60, 1, 61))
    assert at_60 == pytest.approx(ellipsoid_cell_km2(60, 61), abs=0.5)
    assert geodesic_area_km2(box(0, 0, 1, 1)) == pytest.approx(ellipsoid_cell_km2(0, 1), abs=0.5)
    with_hole = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)], holes=[[(0.25, 0.25), (0.75, 0.25), (0.75, 0.75),
                                                                  (0.25, 0.75)]])  # fmt: skip
    assert geodesic_area_km2(with_hole) == pytest.approx(EQUATOR_DEGREE_KM2 * 0.75, rel=0.001)
    # Ring orientation (clockwise here) does not flip the sign.
    clockwise = Polygon([(0, 0), (0, 1), (1, 1), (1, 0)])
    assert geodesic_area_km2(clockwise) == pytest.approx(EQUATOR_DEGREE_KM2, abs=0.5)
    two = MultiPolygon([box(0, 0, 1, 1), box(2, 0, 3, 1)])
    assert geodesic_area_km2(two) == pytest.approx(2 * EQUATOR_DEGREE_KM2, abs=1)


@pytest.mark.parametrize(
    "document",
    [
        {"type": "Polygon", "coordinates": SQUARE},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": SQUARE}},
        {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"name": "x"}, "geometry": {"type": "Polygon", "coordinates": SQUARE}}]},
        {"type": "MultiPolygon", "coordinates": [SQUARE]},
    ],
)  # fmt: skip
def test_accepted_geojson_shapes_give_the_same_footprint(tmp_path: Path, document: dict) -> None:
    geometry = parse_geojson(json.dumps(document), "aoi.geojson")
    aoi, _ = make(tmp_path, geometry)
    assert aoi.bbox == pytest.approx((8.0, 48.0, 8.1, 48.1))
    assert aoi.area_km2 == pytest.approx(82.8, abs=0.5)


def test_heights_are_dropped(tmp_path: Path) -> None:
    geometry = parse_geojson(json.dumps({"type": "Polygon", "coordinates": [[[*p, 300.0] for p in SQUARE[0]]]}))
    assert not geometry.has_z


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"type": "Polygon", "coordinates": [[[8, 48], [8.1, 48]', "aoi.geojson: not valid JSON (Expecting"),
        ("", "aoi.geojson: not valid JSON (Expecting value at line 1, column 1)"),
        ('{"type": "Point", "coordinates": [8, 48]}', "aoi.geojson: type 'Point', but an AOI is a Polygon, a "
                                                      "MultiPolygon, a Feature of one"),
        ('{"type": "LineString", "coordinates": [[8, 48], [9, 49]]}', "type 'LineString', but an AOI is"),
        ('{"type": "Feature", "geometry": {"type": "Point", "coordinates": [8, 48]}}',
         "aoi.geojson (its geometry): type 'Point', but an AOI is"),
        ('[1, 2]', "aoi.geojson: no GeoJSON 'type', but an AOI is"),
        ('{"type": "FeatureCollection", "features": []}', "the FeatureCollection has no features, so the AOI would "
                                                          "be empty"),
        ('{"type": "Feature", "geometry": null, "properties": {}}', "the Feature has no geometry (null)"),
        ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": null}, '
         '{"type": "Feature", "geometry": null}]}', "the FeatureCollection has 2 features; an AOI is one"),
        ('{"type": "Polygon", "coordinates": [[[8, 48], [9, 49]]]}', "the Polygon's coordinates are malformed "
                                                                     "(A linearring requires at least 4"),
        ('{"type": "Polygon", "coordinates": [[["a", 48], [9, 49], [9, 48], ["a", 48]]]}',
         "the Polygon's coordinates are malformed"),
    ],
)  # fmt: skip
def test_unusable_geojson_is_refused_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(AoiError) as error:
        parse_geojson(text, "aoi.geojson")
    assert message in str(error.value)


def test_an_empty_polygon_is_refused(tmp_path: Path) -> None:
    geometry = parse_geojson('{"type": "Polygon", "coordinates": []}')
    with pytest.raises(AoiError, match="AOI 'forest': the geometry is empty"):
        make(tmp_path, geometry)


def test_a_bow_tie_is_refused_with_shapely_s_explanation(tmp_path: Path) -> None:
    bow_tie = parse_geojson(json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}))
    with pytest.raises(AoiError) as error:
        make(tmp_path, bow_tie)
    assert "AOI 'forest': the geometry is not valid (Self-intersection[0.5 0.5])" in str(error.value)


@pytest.mark.parametrize(
    ("ring", "message"),
    [
        ([[179, 0], [-179, 0], [-179, 1], [179, 1], [179, 0]], "its longitudes span 358° (more than 180°), so it "
                                                                "crosses the antimeridian"),
        ([[179, 0], [181, 0], [181, 1], [179, 1], [179, 0]], "longitudes 179..181 leave [-180, 180], so the AOI "
                                                              "crosses the antimeridian"),
        ([[0, 89], [1, 89], [1, 91], [0, 91], [0, 89]], "latitudes 89..91 leave [-90, 90]"),
    ],
)  # fmt: skip
def test_geometries_across_the_antimeridian_or_off_the_globe_are_refused(
    tmp_path: Path, ring: list, message: str
) -> None:
    with pytest.raises(AoiError) as error:
        make(tmp_path, Polygon(ring))
    assert message in str(error.value)
    assert "AOI 'forest'" in str(error.value)


def test_an_aoi_over_the_area_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AoiError) as error:
        make(tmp_path, box(0, 0, 2, 2))
    assert str(error.value) == (
        "AOI 'forest' covers 49,232 km², more than the 25,000 km² limit (SATLAKE_AOI_MAX_AREA_KM2): split it into "
        "smaller AOIs, or raise the limit"
    )
    raised = new_aoi(settings(tmp_path, SATLAKE_AOI_MAX_AREA_KM2="50000"), "big", box(0, 0, 2, 2), created_by="t")
    assert raised[0].area_km2 == pytest.approx(49_231.6, abs=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2,3", "bbox '1,2,3': expected four numbers W,S,E,N in degrees"),
        ("a,b,c,d", "bbox 'a,b,c,d': expected four numbers"),
        ("8,48,7,49", "bbox '8,48,7,49': west (8) must be less than east (7)"),
        ("8,48,8,49", "west (8) must be less than east (8)"),
        ("8,49,9,48", "bbox '8,49,9,48': south (49) must be less than north (48)"),
        ("-181,0,1,1", "bbox '-181,0,1,1': outside lon/lat"),
        ("0,-91,1,1", "outside lon/lat: longitudes must lie in [-180, 180] and latitudes in [-90, 90]"),
        ("0,0,inf,1", "every value must be a finite number of degrees"),
    ],
)
def test_bad_bboxes_are_refused(text: str, message: str) -> None:
    with pytest.raises(AoiError) as error:
        parse_bbox(text)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"source": "sentinel-hub"}, "AOI 'forest': unknown source 'sentinel-hub': use one of cdse, earth-search, "
                                     "planetary-computer, a STAC API root URL"),
        ({"source": "cdse", "collections": ["landsat-c2-l2"]},
         "AOI 'forest': source 'cdse' (https://stac.dataspace.copernicus.eu/v1) has no collection 'landsat-c2-l2'"),
        ({"collections": []}, "AOI 'forest': no collection given"),
        ({"cloud_cover_max": 101.0}, "cloud cover limit 101 is not a percentage: give a number from 0 to 100"),
        ({"cloud_cover_max": -1.0}, "cloud cover limit -1 is not a percentage"),
        ({"cloud_cover_max": math.nan}, "cloud cover limit nan is not a percentage"),
        ({"alert_min_ha": -0.5}, "alert minimum -0.5 ha is not an area"),
    ],
)  # fmt: skip
def test_bad_options_are_refused(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(AoiError) as error:
        make(tmp_path, **options)
    assert message in str(error.value)


@pytest.mark.parametrize("name", ["", "Forest", "-forest", "forest area", "a" * 64, "f/../x", "f'; DROP"])
def test_names_that_are_not_identifiers_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(AoiError, match=f"AOI name {name!r} is not allowed: use 1 to 63 lower-case letters"):
        make(tmp_path, name=name)


def test_options_are_kept_as_given(tmp_path: Path) -> None:
    created = datetime(2024, 6, 1, 12, tzinfo=UTC)
    aoi, source = make(
        tmp_path,
        collections=parse_collections("sentinel-2-l2a, landsat-c2-l2,sentinel-2-l2a"),
        cloud_cover_max=None,
        since=date(2024, 5, 1),
        source="planetary-computer",
        alert_min_ha=0.25,
        created_at=created,
    )
    assert aoi.collections == ("sentinel-2-l2a", "landsat-c2-l2")
    assert (aoi.cloud_cover_max, aoi.since, aoi.alert_min_ha, aoi.created_at) == (None, date(2024, 5, 1), 0.25,
                                                                                 created)  # fmt: skip
    assert (aoi.source, source.signing) == ("planetary-computer", "planetary-computer")
