"""``satlake search`` as a user runs it, in process on a temporary embedded root: the ids, their order and the
filters on a small catalog table; the STAC ItemCollection of ``--json``; a root with nothing catalogued; bad input
refused with exit code 2 and a one-line message; and stack mode through a stand-in for Trino."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from deltalake import DeltaTable, write_deltalake

from satlake.catalog.table import catalog_rows
from satlake.cli import main
from satlake.resources import SatlakeResources
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.query import TrinoQueryEngine
from satlake.resources.trino import TrinoLakeError
from satlake.scenes.commands import format_items
from satlake.scenes.tables import CATALOG_ITEMS
from satlake.settings import Settings

# The four items of the four_items fixture, newest first.
FIJI, EARTH, ARCTIC, MARS = "fiji_20240503", "LC08_T33_20240501", "arctic_20240420", "ctx_gale_20240201"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty embedded root that the command (Settings.from_env) reads."""
    for name in ("SATLAKE_MODE", "SATLAKE_SECRETS_FILE", "SATLAKE_TRINO_USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SATLAKE_ROOT", str(tmp_path))
    return tmp_path


@pytest.fixture
def catalogued(root: Path, four_items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The root with the four items (Earth UTM, across the antimeridian, North Pole, Mars) in catalog/items."""
    write_deltalake(Lakehouse(root_uri=str(root / "lake")).uri(CATALOG_ITEMS), catalog_rows(four_items))
    return four_items


def search(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``satlake search ARGS``; (exit code, stdout, stderr). Usage errors exit through argparse."""
    try:
        code = main(["search", *args])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def listed_ids(table: str) -> list[str]:
    """Ids in the order the text table lists them (the lines between the header rule and the row count)."""
    lines = table.strip().splitlines()
    return [line.split()[0] for line in lines[2:-1]]


def found_ids(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    code, out, err = search(capsys, *args, "--json")
    assert code == 0, err
    return [feature["id"] for feature in json.loads(out)["features"]]


@pytest.mark.usefixtures("catalogued")
def test_the_table_lists_every_item_newest_first_with_its_cloud_cover_and_bbox(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = search(capsys)
    assert code == 0 and err == ""
    assert listed_ids(out) == [FIJI, EARTH, ARCTIC, MARS]
    assert out.strip().endswith("(4 rows)")
    earth_line = next(line for line in out.splitlines() if line.startswith(EARTH))
    assert "2024-05-01T10:00:00+00:00" in earth_line and " 12.5 " in earth_line
    assert "15.0000,45.1265,15.0382,45.1535" in earth_line
    fiji_line = next(line for line in out.splitlines() if line.startswith(FIJI))
    assert "179.5000,-17.5000,-179.5000,-16.5000" in fiji_line  # stored W > E: it crosses 180°


def test_json_is_a_stac_item_collection_of_the_stored_items_in_order(
    capsys: pytest.CaptureFixture[str], catalogued: list[dict[str, Any]]
) -> None:
    code, out, _ = search(capsys, "--json", "--collection", "landsat-c2-l2")
    assert code == 0
    collection = json.loads(out)
    assert collection["type"] == "FeatureCollection" and collection["numberReturned"] == 2
    by_id = {item["id"]: json.loads(json.dumps(item)) for item in catalogued}
    assert collection["features"] == [by_id[FIJI], by_id[EARTH]]
    assert all(feature["type"] == "Feature" and feature["stac_version"] for feature in collection["features"])


@pytest.mark.usefixtures("catalogued")
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--bbox", "14.9,45,15.1,45.2"], [EARTH]),
        (["--bbox", "179,-18,-179,-16"], [FIJI]),  # a query box across the antimeridian
        (["--bbox=-179.9,-17,-179.8,-16.9"], [FIJI]),  # the item's part east of 180°
        (["--bbox", "0,80,10,89"], [ARCTIC]),
        (["--bbox", "137,-5,138,-4"], []),  # Mars coordinates are not places on Earth
        (["--point", "15.01,45.14"], [EARTH]),
        (["--point", "15.1,45.14"], []),
        (["--datetime", "2024-04-20/2024-05-01"], [EARTH, ARCTIC]),  # bare dates: whole UTC days, inclusive
        (["--datetime", "../2024-04-30"], [ARCTIC, MARS]),
        (["--datetime", "2024-05-01T10:00:01Z/.."], [FIJI]),
        (["--datetime", "2024-05-01T12:00:00+02:00"], [EARTH]),  # one instant, given with an offset
        (["--cloud-cover-max", "12.5"], [EARTH, ARCTIC]),  # inclusive; Mars (unknown cover) never matches
        (["--collection", "polar-mosaics", "--collection", "mars-ctx"], [ARCTIC, MARS]),
        (["--collection", "landsat-9"], []),
        (["--limit", "2"], [FIJI, EARTH]),
        (["--bbox=-180,-90,180,90", "--datetime", "2024-04-01/..", "--cloud-cover-max", "20"], [EARTH, ARCTIC]),
    ],
)
def test_filters_find_exactly_the_matching_items(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: list[str]
) -> None:
    assert found_ids(capsys, *args) == expected


@pytest.mark.usefixtures("catalogued")
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--bbox", "1,50,2,40"], "south 50.0 is north of north 40.0"),
        (["--bbox", "1,-95,2,40"], "latitudes must lie in [-90, 90]"),
        (["--bbox", "1,10,200,20"], "longitudes must lie in [-180, 180]"),
        (["--bbox", "nan,1,2,3"], "west 'nan' is not a number"),
        (["--bbox", "1,2,3"], "expected four comma-separated numbers"),
        (["--point", "200,0"], "point '200,0': expected LON,LAT"),
        (["--point", "1,2,3"], "point '1,2,3': expected LON,LAT"),
        (["--datetime", "2024-13-01/.."], "not an RFC 3339 date"),
        (["--datetime", "2024-05-02/2024-05-01"], "is after end"),
        (["--datetime", "../.."], "both ends are open"),
        (["--limit", "-1"], "limit -1 must be a whole number from 1 to 10000"),
        (["--cloud-cover-max", "101"], "must be a number from 0 to 100"),
        (["--collection", "x'; DROP TABLE catalog_items; --"], "is not a valid collection id"),
        (["--bbox", "1,2,3,4", "--point", "1,2"], "not allowed with argument"),
        (["--limit", "ten"], "invalid int value"),
    ],
)
def test_bad_input_is_refused_with_exit_code_2_and_a_message_naming_it(
    capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    code, out, err = search(capsys, *args)
    assert code == 2, (out, err)
    assert fragment in err and "Traceback" not in err
    assert out == ""


@pytest.mark.usefixtures("root")
def test_nothing_catalogued_says_how_to_catalogue_and_finds_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = search(capsys, "--bbox", "0,0,1,1")
    assert code == 0
    assert "no scenes catalogued yet" in err and "satlake demo" in err
    assert out.strip().endswith("(0 rows)")
    code, out, _ = search(capsys, "--json")
    assert code == 0 and json.loads(out) == {"type": "FeatureCollection", "features": [], "numberReturned": 0}


class TrinoStandIn:
    """Answers Trino's statement with DuckDB on the same table (search_sql's text is the same for both), and
    records who asked; or fails as Trino would."""

    def __init__(self, table_uri: str | None, error_name: str | None = None) -> None:
        self.table_uri = table_uri
        self.error_name = error_name
        self.users: list[str | None] = []

    def query(self, sql: str, parameters: list[Any], user: str | None = None) -> tuple[list[str], list[tuple[Any]]]:
        self.users.append(user)
        if self.error_name:
            raise TrinoLakeError(f"stand-in failure {self.error_name}", error_name=self.error_name, user=user)
        con = duckdb.connect()
        try:
            con.register("items_arrow", DeltaTable(self.table_uri).to_pyarrow_dataset())
            con.execute('CREATE SCHEMA "catalog"; CREATE VIEW "catalog"."items" AS SELECT * FROM items_arrow')
            cursor = con.execute(sql, parameters)
            return [column[0] for column in cursor.description], cursor.fetchall()
        finally:
            con.close()


@pytest.fixture
def trino(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrinoStandIn]:
    """Stack mode as user ``science``, with every resource but Trino left out."""
    stand_in = TrinoStandIn(Lakehouse(root_uri=str(root / "lake")).uri(CATALOG_ITEMS))

    def stack_resources(settings: Settings) -> SatlakeResources:
        return SatlakeResources(settings, None, None, TrinoQueryEngine(stand_in))  # type: ignore[arg-type]

    monkeypatch.setenv("SATLAKE_TRINO_USER", "science")
    monkeypatch.setattr("satlake.resources.build_resources", stack_resources)
    yield stand_in


@pytest.mark.usefixtures("catalogued")
def test_stack_mode_searches_through_trino_as_the_configured_user(
    capsys: pytest.CaptureFixture[str], trino: TrinoStandIn
) -> None:
    assert found_ids(capsys, "--stack", "--bbox", "179,-18,-179,-16") == [FIJI]
    assert found_ids(capsys, "--stack", "--cloud-cover-max", "12.5", "--limit", "1") == [EARTH]
    assert trino.users == ["science", "science"]


@pytest.mark.parametrize(
    ("error_name", "code", "fragment"),
    [
        ("TABLE_NOT_FOUND", 0, "no scenes catalogued yet"),
        ("SCHEMA_NOT_FOUND", 0, "no scenes catalogued yet"),
        ("PERMISSION_DENIED", 2, "Trino refused the search as user 'science': stand-in failure PERMISSION_DENIED"),
    ],
)
def test_stack_mode_failures_are_one_line_messages(
    capsys: pytest.CaptureFixture[str], trino: TrinoStandIn, error_name: str, code: int, fragment: str
) -> None:
    trino.error_name = error_name
    done, out, err = search(capsys, "--stack")
    assert done == code and fragment in err and "Traceback" not in err
    assert out == ("" if code else format_items([]) + "\n")
