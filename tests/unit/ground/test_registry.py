"""Missions and stations in the lakehouse: versions and checksums, unchanged files, removal, tokens."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from satlake.ground.registry import (
    RegistryError,
    add_mission,
    add_station,
    get_mission,
    load_missions,
    load_stations,
    mission_history,
    remove_mission,
    remove_station,
)
from satlake.ground.xtce import MissionDefinitionError
from satlake.resources.lakehouse import Lakehouse
from satlake.settings import Settings

DEMOSAT = Path(__file__).resolve().parents[3] / "satlake" / "ground" / "missions" / "demosat.xml"


@pytest.fixture
def lakehouse(tmp_path: Path) -> Lakehouse:
    return Lakehouse(root_uri=str(tmp_path / "lake"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(root=tmp_path)


def test_a_mission_is_kept_with_its_file_checksum_and_packet_types(lakehouse: Lakehouse, settings: Settings) -> None:
    record, new = add_mission(lakehouse, settings, "demosat", DEMOSAT)
    assert new and record.version == 1 and record.format == "xtce"
    assert record.definition == DEMOSAT.read_bytes()
    assert record.topic == "satlake.packets.demosat"
    assert set(record.apids) == set(record.database.packet_types)
    assert get_mission(lakehouse, "demosat").checksum == record.checksum


def test_the_same_file_again_changes_nothing_and_a_changed_file_is_the_next_version(
    lakehouse: Lakehouse, settings: Settings, tmp_path: Path
) -> None:
    add_mission(lakehouse, settings, "demosat", DEMOSAT)
    again, new = add_mission(lakehouse, settings, "demosat", DEMOSAT)
    assert not new and again.version == 1
    changed = tmp_path / "demosat-v2.xml"
    changed.write_bytes(DEMOSAT.read_bytes().replace(b"<!--", b"<!-- v2", 1))
    second, new = add_mission(lakehouse, settings, "demosat", changed)
    assert new and second.version == 2 and second.checksum != again.checksum
    assert [r.version for r in mission_history(lakehouse, "demosat")] == [1, 2]
    assert load_missions(lakehouse)["demosat"].version == 2


def test_an_xtce_that_does_not_parse_is_refused_and_nothing_is_stored(
    lakehouse: Lakehouse, settings: Settings, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text("<xtce:SpaceSystem")
    with pytest.raises(MissionDefinitionError, match=r"broken\.xml"):
        add_mission(lakehouse, settings, "broken", broken)
    assert load_missions(lakehouse) == {}


def test_bad_names_and_missing_missions_say_what_to_do(lakehouse: Lakehouse, settings: Settings) -> None:
    with pytest.raises(RegistryError, match="lower-case"):
        add_mission(lakehouse, settings, "Demo Sat", DEMOSAT)
    with pytest.raises(RegistryError, match="none yet"):
        get_mission(lakehouse, "demosat")


def test_a_removed_mission_is_not_active_but_its_history_stays(lakehouse: Lakehouse, settings: Settings) -> None:
    add_mission(lakehouse, settings, "demosat", DEMOSAT)
    removed = remove_mission(lakehouse, "demosat", now=datetime(2026, 1, 1, tzinfo=UTC))
    assert removed.removed_at is not None
    assert load_missions(lakehouse) == {}
    assert len(mission_history(lakehouse, "demosat")) == 1
    record, new = add_mission(lakehouse, settings, "demosat", DEMOSAT)
    assert new and record.version == 2  # registered again: a new version, the removal stays in history


def test_a_station_token_is_kept_as_a_hash_and_checked_per_mission(lakehouse: Lakehouse) -> None:
    _, token = add_station(lakehouse, "svalbard", ("demosat",))
    stored = load_stations(lakehouse)["svalbard"]
    assert token not in stored.token_sha256
    assert stored.accepts(token, "demosat")
    assert not stored.accepts(token, "othersat")
    assert not stored.accepts(token + "x", "demosat")
    _, new_token = add_station(lakehouse, "svalbard", ("*",))
    renewed = load_stations(lakehouse)["svalbard"]
    assert renewed.accepts(new_token, "othersat") and not renewed.accepts(token, "demosat")
    remove_station(lakehouse, "svalbard")
    assert load_stations(lakehouse) == {}
    with pytest.raises(RegistryError, match="no station named"):
        remove_station(lakehouse, "svalbard")
