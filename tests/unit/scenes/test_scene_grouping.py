"""Grouping object keys into scenes, and refusing keys that are unsafe as paths."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from satlake.scenes.grouping import (
    LANDSAT_OLI_PRODUCT_BANDS,
    UnsafeObjectKeyError,
    group_scene_files,
    scene_id_for_key,
    validate_object_key,
)

PID = "LC08_L1TP_016037_20170813_20170814_01_RT"
SMALL_MTL = f"""GROUP = L1_METADATA_FILE
  GROUP = PRODUCT_METADATA
    SPACECRAFT_ID = "LANDSAT_8"
    DATE_ACQUIRED = 2017-08-13
    FILE_NAME_BAND_4 = "{PID}_B4.TIF"
    FILE_NAME_BAND_5 = "{PID}_B5.TIF"
    FILE_NAME_BAND_QUALITY = "{PID}_BQA.TIF"
  END_GROUP = PRODUCT_METADATA
END_GROUP = L1_METADATA_FILE
END
"""


def read_small_mtl(key: str) -> str:
    return SMALL_MTL


def test_landsat_band_set_is_complete_when_mtl_and_all_listed_bands_landed() -> None:
    keys = [f"landing/{PID}_B5.TIF", f"landing/{PID}_MTL.txt", f"landing/{PID}_B4.TIF", "landing/field.tif"]
    groups = {group.scene_id: group for group in group_scene_files(keys, read_text=read_small_mtl)}
    landsat = groups[PID]
    assert landsat.complete and landsat.missing == () and landsat.kind == "landsat"
    assert landsat.mtl_key == f"landing/{PID}_MTL.txt"
    assert len(landsat.files) == 3
    assert groups["field"].complete and groups["field"].files == ("landing/field.tif",)


def test_landsat_band_set_lists_the_missing_band_files() -> None:
    groups = group_scene_files([f"{PID}_MTL.txt", f"{PID}_B4.TIF"], read_text=read_small_mtl)
    assert len(groups) == 1
    assert not groups[0].complete
    assert groups[0].missing == (f"{PID}_B5.TIF",)  # the QA file is not a FILE_NAME_BAND_<n>


def test_landsat_bands_without_mtl_wait_for_it() -> None:
    (group,) = group_scene_files([f"{PID}_B4.TIF", f"{PID}_B5.TIF"], read_text=read_small_mtl)
    assert not group.complete
    assert group.missing == (f"{PID}_MTL.txt",)


def test_broken_mtl_is_a_problem_not_an_exception() -> None:
    (group,) = group_scene_files([f"{PID}_MTL.txt"], read_text=lambda key: "GROUP = A\n  X = 1\n")
    assert not group.complete
    assert "never closed" in group.problems[0]


def test_real_fixture_lists_eleven_bands_but_ships_four(landsat_dir: Path) -> None:
    keys = [f"landsat8/{PID}/{path.name}" for path in landsat_dir.iterdir()]
    mtl_text = (landsat_dir / f"{PID}_MTL.txt").read_text()
    (strict,) = group_scene_files(keys, read_text=lambda key: mtl_text)
    assert not strict.complete
    assert f"{PID}_B1.TIF" in strict.missing and len(strict.missing) == 7
    (products_only,) = group_scene_files(keys, read_text=lambda key: mtl_text, required_bands=LANDSAT_OLI_PRODUCT_BANDS)
    assert products_only.complete and len(products_only.files) == 5


def test_scene_id_for_key() -> None:
    assert scene_id_for_key(f"a/b/{PID}_B4.TIF") == PID
    assert scene_id_for_key(f"{PID.lower()}_mtl.txt") == PID
    assert scene_id_for_key("drops/2024/Field Survey #3.TIFF") == "Field_Survey_3"
    assert scene_id_for_key("sim_t00_20240502.tif") == "sim_t00_20240502"


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        ("../etc/passwd.tif", "'..'"),
        ("scenes/../../secret.tif", "'..'"),
        ("/etc/passwd.tif", "absolute"),
        ("C:/data/x.tif", "absolute"),
        ("scene\x00.tif", "control character"),
        ("scene\n.tif", "control character"),
        ("evil\u202efit.exe", "invisible formatting"),
        ("a\\..\\b.tif", "backslash"),
        ("a" * 1000 + ".tif", "longer than 255 bytes"),
        ("/".join(["ab" * 100] * 6) + ".tif", "1024"),
        ("", "empty"),
        ("folder/", "folder"),
        ("a//b.tif", "empty or '.' segment"),
    ],
)
def test_unsafe_keys_are_refused_with_the_rule_and_the_key(key: str, rule: str) -> None:
    with pytest.raises(UnsafeObjectKeyError) as caught:
        validate_object_key(key)
    message = str(caught.value)
    assert rule in message
    assert repr(key)[:40] in message


def test_keys_are_normalised_to_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "café/Zürich.tif")
    assert decomposed != "café/Zürich.tif"
    assert validate_object_key(decomposed) == "café/Zürich.tif"
    assert scene_id_for_key(decomposed) == "Z_rich"


def test_hostile_keys_do_not_affect_other_scenes() -> None:
    keys = ["../escape.tif", "good.tif", "x" * 1000, "notes/readme.txt"]
    groups = group_scene_files(keys)
    by_kind = {group.kind: group for group in groups}
    assert by_kind["geotiff"].scene_id == "good" and by_kind["geotiff"].complete
    assert by_kind["rejected"].scene_id.startswith("rejected-")
    assert not by_kind["rejected"].complete and "'..'" in by_kind["rejected"].problems[0]
    assert "not a scene file" in by_kind["unrecognised"].problems[0]
    assert len(groups) == 4


def test_two_geotiffs_with_the_same_stem_are_flagged() -> None:
    (group,) = group_scene_files(["a/x.tif", "b/x.tif"])
    assert not group.complete
    assert "share the scene id" in group.problems[0]
