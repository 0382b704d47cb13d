"""Distances on Mars: pyproj's geodesics on the IAU 2015 Mars ellipsoid against an independent hand-written
Vincenty inverse, the sphere CRS measurably differing, and segment lengths of a path walked out and measured back.
"""

from __future__ import annotations

import math

import pytest

from satlake.mars.geodesy import (
    MARS_CRS_CODE,
    MARS_SPHERE_CRS_CODE,
    GeodesyError,
    distance_from_km,
    geodesic_m,
    mars_crs,
    mars_geod,
    normalise_lon,
    segment_lengths_m,
)

MARS_A, MARS_B = 3_396_190.0, 3_376_200.0  # IAU 2015 Mars ellipsoid, metres
JEZERO = (77.4509, 18.4447)
GALE = (137.4417, -4.5895)


def vincenty_inverse_m(
    lon1: float, lat1: float, lon2: float, lat2: float, a: float = MARS_A, b: float = MARS_B
) -> float:
    """Vincenty (1975) inverse formula on the ellipsoid (a, b), written from the paper: the reference the tests
    hold pyproj (Karney's algorithm) against. Not for nearly antipodal points, where it does not converge."""
    f = (a - b) / a
    u1 = math.atan((1 - f) * math.tan(math.radians(lat1)))
    u2 = math.atan((1 - f) * math.tan(math.radians(lat2)))
    big_l = math.radians(lon2 - lon1)
    sin_u1, cos_u1, sin_u2, cos_u2 = math.sin(u1), math.cos(u1), math.sin(u2), math.cos(u2)
    lam = big_l
    for _ in range(200):
        sin_lam, cos_lam = math.sin(lam), math.cos(lam)
        sin_sigma = math.hypot(cos_u2 * sin_lam, cos_u1 * sin_u2 - sin_u1 * cos_u2 * cos_lam)
        if sin_sigma == 0:
            return 0.0
        cos_sigma = sin_u1 * sin_u2 + cos_u1 * cos_u2 * cos_lam
        sigma = math.atan2(sin_sigma, cos_sigma)
        sin_alpha = cos_u1 * cos_u2 * sin_lam / sin_sigma
        cos2_alpha = 1 - sin_alpha**2
        cos_2sm = cos_sigma - 2 * sin_u1 * sin_u2 / cos2_alpha if cos2_alpha else 0.0
        c = f / 16 * cos2_alpha * (4 + f * (4 - 3 * cos2_alpha))
        previous = lam
        lam = big_l + (1 - c) * f * sin_alpha * (
            sigma + c * sin_sigma * (cos_2sm + c * cos_sigma * (-1 + 2 * cos_2sm**2))
        )
        if abs(lam - previous) < 1e-14:
            break
    else:
        raise AssertionError("Vincenty did not converge")
    u_sq = cos2_alpha * (a**2 - b**2) / b**2
    big_a = 1 + u_sq / 16384 * (4096 + u_sq * (-768 + u_sq * (320 - 175 * u_sq)))
    big_b = u_sq / 1024 * (256 + u_sq * (-128 + u_sq * (74 - 47 * u_sq)))
    delta_sigma = (
        big_b
        * sin_sigma
        * (
            cos_2sm
            + big_b
            / 4
            * (
                cos_sigma * (-1 + 2 * cos_2sm**2)
                - big_b / 6 * cos_2sm * (-3 + 4 * sin_sigma**2) * (-3 + 4 * cos_2sm**2)
            )
        )
    )
    return b * big_a * (sigma - delta_sigma)


def test_crs_is_the_mars_ellipsoid() -> None:
    crs = mars_crs()
    assert crs.to_string() == MARS_CRS_CODE
    assert "Mars" in crs.name
    geod = mars_geod()
    assert (geod.a, geod.b) == (MARS_A, MARS_B)
    assert mars_geod(MARS_SPHERE_CRS_CODE).b == MARS_A  # the sphere: b == a


@pytest.mark.parametrize(
    ("start", "end", "approx_m"),
    [
        (JEZERO, (77.4529, 18.4452), 116.0),  # a short drive near Jezero, ~100 m
        (JEZERO, (77.5600, 18.5700), 9_600.0),  # ~10 km
        (GALE, (150.0, 8.0), 1_050_000.0),  # ~1000 km across Elysium
        ((-30.0, 60.0), (-29.0, 45.0), 890_000.0),  # long, mostly north-south
    ],
)
def test_geodesic_agrees_with_independent_vincenty(
    start: tuple[float, float], end: tuple[float, float], approx_m: float
) -> None:
    ours = geodesic_m(*start, *end)
    reference = vincenty_inverse_m(*start, *end)
    assert ours == pytest.approx(approx_m, rel=0.1)
    assert abs(ours - reference) < 1e-3, f"pyproj {ours} m vs Vincenty {reference} m"
    assert geodesic_m(*end, *start) == pytest.approx(ours, abs=1e-6)


def test_sphere_differs_measurably_on_a_long_north_south_line() -> None:
    ellipsoid = geodesic_m(0.0, 0.0, 0.0, 80.0)
    sphere = geodesic_m(0.0, 0.0, 0.0, 80.0, crs_code=MARS_SPHERE_CRS_CODE)
    assert sphere == pytest.approx(math.radians(80.0) * MARS_A, rel=1e-9)  # an arc of a circle of radius a
    assert abs(sphere - ellipsoid) > 10_000.0  # ~0.5% flatter: kilometres over 4700 km
    assert abs(ellipsoid - vincenty_inverse_m(0.0, 0.0, 0.0, 80.0)) < 1e-3


def test_segment_lengths_round_trip() -> None:
    """Walk a path out with known steps (forward geodesics), then measure it back."""
    geod = mars_geod()
    steps = [(35.0, 120.0), (110.0, 5_000.0), (200.0, 42.5), (290.0, 250_000.0), (0.0, 0.5)]
    lons, lats = [JEZERO[0]], [JEZERO[1]]
    for azimuth, distance in steps:
        lon, lat, _back = geod.fwd(lons[-1], lats[-1], azimuth, distance)
        lons.append(lon)
        lats.append(lat)
    lengths = segment_lengths_m(lons, lats)
    assert lengths[0] is None
    assert lengths[1:] == pytest.approx([distance for _azimuth, distance in steps], abs=1e-6)
    assert segment_lengths_m([], []) == []
    assert segment_lengths_m([1.0], [2.0]) == [None]


def test_distance_from_km_and_lon_normalisation() -> None:
    assert distance_from_km(*JEZERO, *JEZERO) == 0.0
    assert distance_from_km(*JEZERO, 77.5100, 18.5200) == pytest.approx(geodesic_m(*JEZERO, 77.5100, 18.5200) / 1000)
    # 0..360 east longitudes name the same place as -180..180 ones.
    assert geodesic_m(354.4734, -1.9462, 354.4734 - 360.0, -1.9462) == pytest.approx(0.0, abs=1e-6)
    assert normalise_lon(350.0) == -10.0
    assert normalise_lon(180.0) == 180.0
    assert normalise_lon(-180.0) == -180.0


@pytest.mark.parametrize(
    ("lon", "lat", "message"),
    [
        (float("nan"), 0.0, "not finite"),
        (0.0, float("inf"), "not finite"),
        (0.0, 91.0, "latitude 91.0 is outside"),
        (361.0, 0.0, "longitude 361.0 is outside"),
        (-181.0, 0.0, "longitude -181.0 is outside"),
    ],
)
def test_bad_coordinates_are_refused(lon: float, lat: float, message: str) -> None:
    with pytest.raises(GeodesyError, match=message):
        geodesic_m(lon, lat, 0.0, 0.0)
    with pytest.raises(GeodesyError, match=message):
        segment_lengths_m([0.0, lon], [0.0, lat])


def test_mismatched_path_and_bad_normalisation_are_refused() -> None:
    with pytest.raises(GeodesyError, match="2 longitudes but 1 latitudes"):
        segment_lengths_m([0.0, 1.0], [0.0])
    with pytest.raises(GeodesyError, match=r"outside -180\.\.360"):
        normalise_lon(400.0)
