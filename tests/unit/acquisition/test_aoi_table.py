"""The Delta table catalog/areas_of_interest: rows as stored, add -> load -> remove round trips, history kept,
and the refusals (an active name added twice, an unknown name removed)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import shapely
from shapely.geometry import MultiPolygon, box

from satlake.acquisition.aoi import AoiError, new_aoi
from satlake.acquisition.aoi_table import (
    AREAS_OF_INTEREST,
    AREAS_OF_INTEREST_SCHEMA,
    add_aoi,
    get_aoi,
    load_aois,
    remove_aoi,
)
from satlake.resources import build_resources
from satlake.resources.lakehouse import Lakehouse
from satlake.settings import Settings

T0 = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"SATLAKE_ROOT": str(tmp_path)})


@pytest.fixture
def lakehouse(settings: Settings) -> Lakehouse:
    return build_resources(settings).lakehouse


def add(settings: Settings, lakehouse: Lakehouse, name: str, geometry=None, at: datetime = T0, **options) -> None:  # type: ignore[no-untyped-def]
    aoi, source = new_aoi(settings, name, geometry if geometry is not None else box(8, 48, 8.1, 48.1),
                          created_by="tester", created_at=at, **options)  # fmt: skip
    add_aoi(lakehouse, aoi, source.url)


def test_an_added_aoi_is_one_row_with_every_column(settings: Settings, lakehouse: Lakehouse) -> None:
    geometry = MultiPolygon([box(0, 0, 0.5, 0.5), box(0.6, 0.6, 1, 1)])
    add(settings, lakehouse, "two-parts", geometry, collections=["sentinel-2-l2a", "landsat-c2-l2"],
        cloud_cover_max=12.5, since=date(2024, 5, 1), source="planetary-computer", alert_min_ha=0.5)  # fmt: skip
    table = lakehouse.read(AREAS_OF_INTEREST)
    assert table is not None
    assert table.schema.equals(AREAS_OF_INTEREST_SCHEMA, check_metadata=False)
    assert table.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    [row] = table.to_pylist()
    assert shapely.from_wkb(row.pop("geometry_wkb")).equals(geometry)
    area = row.pop("area_km2")
    assert area == pytest.approx(12_308.78 * (0.25 + 0.16), rel=0.001)
    assert row == {
        "name": "two-parts",
        "bbox_xmin": 0.0, "bbox_ymin": 0.0, "bbox_xmax": 1.0, "bbox_ymax": 1.0,
        "collections": ["sentinel-2-l2a", "landsat-c2-l2"],
        "cloud_cover_max": 12.5,
        "since": date(2024, 5, 1),
        "source": "planetary-computer",
        "source_url": "https://planetarycomputer.microsoft.com/api/stac/v1",
        "alert_min_ha": 0.5,
        "created_by": "tester",
        "created_at": T0,
        "removed_at": None,
    }  # fmt: skip


def test_add_load_remove_load_keeps_history(settings: Settings, lakehouse: Lakehouse) -> None:
    assert load_aois(lakehouse) == []
    add(settings, lakehouse, "forest")
    add(settings, lakehouse, "coast", box(-9.5, 38.6, -9.3, 38.8))
    assert [a.name for a in load_aois(lakehouse)] == ["coast", "forest"]
    forest = get_aoi(lakehouse, "forest")
    assert forest.geometry.equals(box(8, 48, 8.1, 48.1))
    assert (forest.created_at, forest.collections, forest.cloud_cover_max) == (T0, ("sentinel-2-l2a",), 30.0)

    removed_at = datetime(2024, 6, 2, tzinfo=UTC)
    removed = remove_aoi(lakehouse, "forest", now=removed_at)
    assert (removed.name, removed.removed_at) == ("forest", removed_at)
    assert [a.name for a in load_aois(lakehouse)] == ["coast"]
    everything = load_aois(lakehouse, include_removed=True)
    assert [(a.name, a.removed_at) for a in everything] == [("coast", None), ("forest", removed_at)]

    # The name is free again; the removed AOI stays in the history.
    later = datetime(2024, 6, 3, tzinfo=UTC)
    add(settings, lakehouse, "forest", box(8, 48, 8.2, 48.2), at=later)
    assert get_aoi(lakehouse, "forest").created_at == later
    assert get_aoi(lakehouse, "forest").bbox == (8.0, 48.0, 8.2, 48.2)
    history = [(a.name, a.created_at, a.removed_at) for a in load_aois(lakehouse, include_removed=True)]
    assert history == [("coast", T0, None), ("forest", T0, removed_at), ("forest", later, None)]


def test_an_active_name_cannot_be_added_twice(settings: Settings, lakehouse: Lakehouse) -> None:
    add(settings, lakehouse, "forest")
    with pytest.raises(AoiError) as error:
        add(settings, lakehouse, "forest", box(0, 0, 1, 1))
    assert str(error.value) == (
        "AOI 'forest' exists already (added 2024-06-01 12:00 UTC by tester): choose another name, or "
        "`satlake aoi remove forest` first"
    )
    assert lakehouse.read(AREAS_OF_INTEREST).num_rows == 1  # type: ignore[union-attr]


def test_unknown_names_are_errors_naming_the_known_aois(settings: Settings, lakehouse: Lakehouse) -> None:
    with pytest.raises(AoiError, match="no AOI named 'forest': there are no AOIs yet; add one with `satlake aoi add`"):
        get_aoi(lakehouse, "forest")
    add(settings, lakehouse, "forest")
    add(settings, lakehouse, "coast", box(-9.5, 38.6, -9.3, 38.8))
    remove_aoi(lakehouse, "coast")
    expected = "no AOI named {!r}: the AOIs are forest (`satlake aoi list` shows them)"
    for name in ("wood", "Not A Name"):
        with pytest.raises(AoiError) as error:
            get_aoi(lakehouse, name)
        assert str(error.value) == expected.format(name)
    with pytest.raises(AoiError) as error:
        remove_aoi(lakehouse, "coast")  # removed already
    assert str(error.value) == expected.format("coast")
