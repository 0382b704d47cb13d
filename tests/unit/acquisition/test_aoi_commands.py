"""``satlake aoi add/list/remove`` as a user runs them: parsed from the command line, printed through the
report, stored in a real Delta table under a temporary root; bad input exits 2 with the message."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from satlake.acquisition.aoi_table import AREAS_OF_INTEREST, load_aois
from satlake.acquisition.commands import add_acquisition_commands, aoi_subparsers
from satlake.cli import _dispatch
from satlake.cli_support import CliError
from satlake.reporting import Report
from satlake.resources import build_resources
from satlake.settings import Settings


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SATLAKE_ROOT", str(tmp_path))
    monkeypatch.setenv("SATLAKE_MODE", "embedded")
    monkeypatch.setenv("SATLAKE_USER", "ana")
    monkeypatch.delenv("SATLAKE_STAC_SOURCES", raising=False)
    monkeypatch.delenv("SATLAKE_AOI_MAX_AREA_KM2", raising=False)
    return tmp_path


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="satlake")
    add_acquisition_commands(top.add_subparsers(dest="command", required=True))
    return top


def run(*argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one command, through the CLI's own error handling."""
    args = parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    args.report = Report(out, err, width=250)
    code = _dispatch(args, args.report)
    return code, out.getvalue(), err.getvalue()


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def test_add_list_remove_list(root: Path) -> None:
    code, out, err = run("aoi", "add", "equator", "--bbox=0,0,1,1", "--since", "2024-05-01")
    assert (code, err) == (0, "")
    assert out == (
        "added AOI equator: 12,308.8 km², bbox 0.0000,0.0000,1.0000,1.0000, source earth-search "
        "(https://earth-search.aws.element84.com/v1), collections sentinel-2-l2a\n"
    )
    code, out, _ = run("aoi", "add", "lisbon", "--bbox=-9.5,38.6,-9.3,38.8", "--collections",
                       "sentinel-2-l2a,landsat-c2-l2", "--cloud-cover-max", "10", "--source", "planetary-computer",
                       "--alert-min-ha", "0.5")  # fmt: skip
    assert code == 0 and "added AOI lisbon: " in out
    assert "source planetary-computer (https://planetarycomputer.microsoft.com/api/stac/v1), collections " \
           "sentinel-2-l2a, landsat-c2-l2" in out  # fmt: skip

    code, out, _ = run("aoi", "list")
    table = lines(out)
    assert code == 0
    assert table[0].split() == ["name", "source", "collections", "cloud", "max", "since", "area", "km²", "bbox",
                                "created"]  # fmt: skip
    assert table[1].split()[:7] == ["equator", "earth-search", "sentinel-2-l2a", "30", "2024-05-01", "12,308.8",
                                    "0.0000,0.0000,1.0000,1.0000"]  # fmt: skip
    assert table[2].split()[:7] == ["lisbon", "planetary-computer", "sentinel-2-l2a,landsat-c2-l2", "10", "-",
                                    "386.3", "-9.5000,38.6000,-9.3000,38.8000"]  # fmt: skip
    assert len(table) == 3

    code, out, _ = run("aoi", "remove", "equator")
    assert code == 0
    assert out.startswith("removed AOI equator (added ") and " by ana); it is no longer searched" in out

    code, out, _ = run("aoi", "list")
    assert [line.split()[0] for line in lines(out)[1:]] == ["lisbon"]
    code, out, _ = run("aoi", "list", "--all")
    table = lines(out)
    assert table[0].split()[-1] == "removed"
    # equator shows when it was removed; lisbon is active, so it has no removal time.
    assert [(line.split()[0], line.split()[-1]) for line in table[1:]] == [("equator", "UTC"), ("lisbon", "-")]

    stored = load_aois(build_resources(Settings.from_env()).lakehouse, include_removed=True)
    assert {a.name: a.created_by for a in stored} == {"equator": "ana", "lisbon": "ana"}
    lisbon = next(a for a in stored if a.name == "lisbon")
    assert (lisbon.cloud_cover_max, lisbon.alert_min_ha, lisbon.source) == (10.0, 0.5, "planetary-computer")


def test_list_with_no_aois_says_how_to_add_one(root: Path) -> None:
    assert run("aoi", "list") == (
        0,
        "no AOIs yet: add one with `satlake aoi add NAME --bbox=W,S,E,N` or `satlake aoi add NAME --geojson FILE`\n",
        "",
    )


def test_add_from_a_geojson_file(root: Path) -> None:
    path = root / "field.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}}]}))  # fmt: skip
    code, out, _ = run("aoi", "add", "field", "--geojson", str(path), "--source", "https://stac.example.org/v1/")
    assert code == 0
    assert out == (
        "added AOI field: 12,308.8 km², bbox 0.0000,0.0000,1.0000,1.0000, source stac.example.org "
        "(https://stac.example.org/v1), collections sentinel-2-l2a\n"
    )
    table = build_resources(Settings.from_env()).lakehouse.read(AREAS_OF_INTEREST)
    assert table is not None and table.column("source_url").to_pylist() == ["https://stac.example.org/v1"]


def write(root: Path, name: str, text: str) -> str:
    path = root / name
    path.write_text(text)
    return str(path)


BOW_TIE = '{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}'
ACROSS_180 = '{"type": "Polygon", "coordinates": [[[179, 0], [-179, 0], [-179, 1], [179, 1], [179, 0]]]}'


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--geojson", "{root}/bad.geojson"], "{root}/bad.geojson: not valid JSON (Expecting value at line 1"),
        (["--geojson", "{root}/point.geojson"], "{root}/point.geojson: type 'Point', but an AOI is a Polygon"),
        (["--geojson", "{root}/empty.geojson"], "AOI 'x': the geometry is empty"),
        (["--geojson", "{root}/bowtie.geojson"], "AOI 'x': the geometry is not valid (Self-intersection[0.5 0.5])"),
        (["--geojson", "{root}/across.geojson"], "AOI 'x': its longitudes span 358° (more than 180°), so it "
                                                 "crosses the antimeridian"),
        (["--geojson", "{root}/missing.geojson"], "--geojson {root}/missing.geojson: no such file"),
        (["--bbox=0,0,3,3"], "AOI 'x' covers 110,758 km², more than the 25,000 km² limit"),
        (["--bbox=0,0,1,1", "--source", "sentinel-hub"], "AOI 'x': unknown source 'sentinel-hub': use one of cdse, "
                                                         "earth-search, planetary-computer"),
        (["--bbox=0,0,1,1", "--source", "cdse", "--collections", "landsat-c2-l2"],
         "AOI 'x': source 'cdse' (https://stac.dataspace.copernicus.eu/v1) has no collection 'landsat-c2-l2'"),
        (["--bbox=1,0,0,1"], "bbox '1,0,0,1': west (1) must be less than east (0)"),
        (["--bbox=0,0,1"], "bbox '0,0,1': expected four numbers W,S,E,N in degrees"),
        (["--bbox=0,0,1,1", "--cloud-cover-max", "120"], "cloud cover limit 120 is not a percentage"),
        (["--bbox=0,0,1,1", "--since", "2024-13-01"], "--since '2024-13-01' is not a day: write YYYY-MM-DD"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_the_message(root: Path, argv: list[str], message: str) -> None:
    write(root, "bad.geojson", "")
    write(root, "point.geojson", '{"type": "Point", "coordinates": [0, 0]}')
    write(root, "empty.geojson", '{"type": "MultiPolygon", "coordinates": []}')
    write(root, "bowtie.geojson", BOW_TIE)
    write(root, "across.geojson", ACROSS_180)
    code, out, err = run("aoi", "add", "x", *(arg.format(root=root) for arg in argv))
    assert (code, out) == (2, "")
    assert err.startswith("satlake: error: ")
    assert message.format(root=root) in " ".join(err.split())
    assert load_aois(build_resources(Settings.from_env()).lakehouse) == []


def test_a_duplicate_active_name_exits_2(root: Path) -> None:
    assert run("aoi", "add", "forest", "--bbox=8,48,8.1,48.1")[0] == 0
    code, out, err = run("aoi", "add", "forest", "--bbox=0,0,1,1")
    assert (code, out) == (2, "")
    assert "AOI 'forest' exists already (added " in err and "`satlake aoi remove forest` first" in err


def test_removing_an_unknown_name_names_the_known_ones(root: Path) -> None:
    run("aoi", "add", "forest", "--bbox=8,48,8.1,48.1")
    run("aoi", "add", "coast", "--bbox=-9.5,38.6,-9.3,38.8")
    code, _, err = run("aoi", "remove", "wood")
    assert code == 2
    assert "no AOI named 'wood': the AOIs are coast, forest" in err


def test_commands_raise_cli_error_when_called_directly(root: Path) -> None:
    args = parser().parse_args(["aoi", "remove", "wood"])
    with pytest.raises(CliError, match="no AOI named 'wood': there are no AOIs yet"):
        args.func(args)


def test_more_aoi_subcommands_join_the_same_parser(root: Path) -> None:
    top = argparse.ArgumentParser(prog="satlake")
    commands = top.add_subparsers(dest="command", required=True)
    add_acquisition_commands(commands)
    history = aoi_subparsers(commands).add_parser("history")
    history.set_defaults(func=lambda args: 0)
    assert top.parse_args(["aoi", "history"]).action == "history"
    assert top.parse_args(["aoi", "status", "x"]).action == "status"
    assert top.parse_args(["aoi", "list", "--all"]).all is True


def test_acquire_publishes_a_valid_request_and_status_reports_it(root: Path) -> None:
    from satlake.acquisition.request import parse_request
    from satlake.acquisition.sensors import commit_requests, read_requests

    assert run("aoi", "add", "park", "--bbox=13.86,50.50,13.90,50.53", "--since", "2024-05-01")[0] == 0
    code, out, err = run("acquire", "--aoi", "park", "--datetime", "2024-05-01/2024-09-30")
    assert (code, err) == (0, "")
    assert "published request park-" in out and "satlake.acquisition-requests" in out
    settings = Settings.from_env()
    resources = build_resources(settings)
    (record,) = resources.event_log.read(settings.acquisition_topic, {0: 0}, 10, timeout_s=1.0)
    request = parse_request(record.value)
    assert (request.aoi, request.datetime, request.requested_by) == ("park", "2024-05-01/2024-09-30", "ana")
    assert record.key == b"park"

    batch = read_requests(resources.event_log, resources.lakehouse, settings.acquisition_topic)
    assert commit_requests(resources.lakehouse, settings.acquisition_topic, batch, request.requested_at) == [
        request.request_id
    ]
    code, out, err = run("aoi", "status", "park")
    assert (code, err) == (0, "")
    assert "requests: 1 received, 0 searched to the end, 0 failed; items: none" in out
    assert "forest-change alerts: none yet" in out


def test_acquire_refuses_an_unknown_aoi_and_a_bad_datetime(root: Path) -> None:
    assert run("aoi", "add", "park", "--bbox=13.86,50.50,13.90,50.53")[0] == 0
    code, _, err = run("acquire", "--aoi", "nowhere")
    assert code == 2 and "nowhere" in err and "park" in err
    code, _, err = run("acquire", "--aoi", "park", "--datetime", "2024-13-01/2024-14-01")
    assert code == 2 and "--datetime '2024-13-01/2024-14-01'" in err
    code, _, err = run("aoi", "status", "nowhere")
    assert code == 2 and "park" in err
