"""A new version of a mission database adds columns and never breaks history; bronze runs exactly once."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from satlake.ground.bronze import update_bronze_packets
from satlake.ground.ingest import ingest_packets
from satlake.ground.registry import add_mission
from satlake.ground.replay import replay_to_log
from satlake.ground.simulate import simulate_packets
from satlake.ground.tables import BRONZE_PACKETS, BRONZE_PARAMETERS, RAW_PACKETS, packet_type_table
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.local_event_log import LocalEventLog
from satlake.settings import Settings

DEMOSAT = Path(__file__).resolve().parents[3] / "satlake" / "ground" / "missions" / "demosat.xml"
HK = packet_type_table("demosat", "hk")


def _v2(tmp_path: Path) -> Path:
    """DEMOSAT with a new housekeeping parameter after UPTIME: the boot count."""
    text = DEMOSAT.read_text()
    text = text.replace(
        '<xtce:Parameter name="UPTIME" parameterTypeRef="UPTIME_Type" shortDescription="Seconds since boot"/>',
        '<xtce:Parameter name="UPTIME" parameterTypeRef="UPTIME_Type" shortDescription="Seconds since boot"/>\n'
        '      <xtce:Parameter name="BOOT_COUNT" parameterTypeRef="UINT16_Type"/>',
    )
    text = text.replace(
        '<xtce:ParameterRefEntry parameterRef="UPTIME"/>',
        '<xtce:ParameterRefEntry parameterRef="UPTIME"/>\n'
        '          <xtce:ParameterRefEntry parameterRef="BOOT_COUNT"/>',
    )
    path = tmp_path / "demosat-v2.xml"
    path.write_text(text)
    return path


def _land(tmp_path: Path, lakehouse: Lakehouse, log: LocalEventLog, mission: object, packets: list[bytes]) -> None:
    archive = tmp_path / f"archive-{len(list(tmp_path.glob('archive-*')))}.bin"
    archive.write_bytes(b"".join(packets))
    replay_to_log(log, mission.topic, [archive], station="svalbard")  # type: ignore[attr-defined]
    ingest_packets(log, lakehouse, mission)  # type: ignore[arg-type]


def test_a_new_database_version_adds_columns_and_keeps_history(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    lakehouse = Lakehouse(root_uri=str(tmp_path / "lake"))
    log = LocalEventLog(tmp_path / "log", default_partitions=4)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    v1, _ = add_mission(lakehouse, settings, "demosat", DEMOSAT)
    _land(tmp_path, lakehouse, log, v1, simulate_packets(v1.database, start=start, seconds=60))
    first = update_bronze_packets(lakehouse, v1)
    assert first.packets == first.raw_rows > 0

    v2, new = add_mission(lakehouse, settings, "demosat", _v2(tmp_path))
    assert new and v2.version == 2
    later = simulate_packets(v2.database, start=start + timedelta(minutes=5), seconds=60, alarm=False)
    _land(tmp_path, lakehouse, log, v2, later)
    second = update_bronze_packets(lakehouse, v2)
    assert second.raw_rows == len(later) and second.rejects == 0

    rows = lakehouse.read(HK).to_pylist()
    old = [r for r in rows if r["packet_time"] < start + timedelta(minutes=5)]
    new_rows = [r for r in rows if r["packet_time"] >= start + timedelta(minutes=5)]
    assert old and new_rows
    assert all(r["boot_count"] is None for r in old)  # history is read with the new column, as null
    assert all(r["boot_count"] is not None and r["boot_count_raw"] is not None for r in new_rows)
    assert all(r["batt_v"] is not None for r in rows)
    boot = lakehouse.read(BRONZE_PARAMETERS, filters=[("parameter", "=", "BOOT_COUNT")])
    assert boot.num_rows == len(new_rows)

    # Nothing new: a third run writes nothing, and nothing is counted twice.
    third = update_bronze_packets(lakehouse, v2)
    assert third.raw_rows == 0
    assert lakehouse.read(BRONZE_PACKETS).num_rows == first.packets + second.packets
    assert lakehouse.read(RAW_PACKETS).num_rows == first.raw_rows + second.raw_rows


def test_bronze_skips_what_a_table_already_committed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that dies after some tables committed, run again, writes each table's rows once."""
    import satlake.ground.bronze as bronze

    settings = Settings(root=tmp_path)
    lakehouse = Lakehouse(root_uri=str(tmp_path / "lake"))
    log = LocalEventLog(tmp_path / "log", default_partitions=4)
    mission, _ = add_mission(lakehouse, settings, "demosat", DEMOSAT)
    _land(tmp_path, lakehouse, log, mission, simulate_packets(mission.database, start=datetime(2026, 12, 1, tzinfo=UTC),
                                                               seconds=30))  # fmt: skip
    real_write = bronze._write

    def dying_write(lakehouse_: Lakehouse, table: object, *args: object) -> int:
        if table == BRONZE_PACKETS:
            raise RuntimeError("killed before the last commit")
        return real_write(lakehouse_, table, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(bronze, "_write", dying_write)
    with pytest.raises(RuntimeError, match="killed"):
        update_bronze_packets(lakehouse, mission)
    monkeypatch.setattr(bronze, "_write", real_write)
    report = update_bronze_packets(lakehouse, mission)
    parameters = lakehouse.read(BRONZE_PARAMETERS)
    columns = [parameters.column(name).to_pylist() for name in ("partition", "offset", "parameter")]
    keys = list(zip(*columns, strict=True))
    assert len(keys) == len(set(keys)) == report.parameters > 0
    assert lakehouse.read(BRONZE_PACKETS).num_rows == report.packets


def test_a_backlog_is_decoded_in_chunks_with_the_same_result(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    results = []
    for name, chunk_rows in (("whole", 1_000_000), ("chunked", 37)):
        lakehouse = Lakehouse(root_uri=str(tmp_path / name / "lake"))
        log = LocalEventLog(tmp_path / name / "log", default_partitions=4)
        mission, _ = add_mission(lakehouse, settings, "demosat", DEMOSAT)
        packets = simulate_packets(mission.database, start=datetime(2026, 12, 1, tzinfo=UTC), seconds=120)
        packets = packets[:40] + packets[45:]  # a gap inside the backlog
        (tmp_path / name).mkdir(exist_ok=True)
        _land(tmp_path / name, lakehouse, log, mission, packets)
        report = update_bronze_packets(lakehouse, mission, chunk_rows=chunk_rows)
        stored = lakehouse.read(BRONZE_PACKETS).sort_by([("partition", "ascending"), ("offset", "ascending")])
        results.append((report.packets, report.events, report.missing_packets,
                        stored.select(["apid", "sequence_count", "sequence_status"]).to_pylist()))  # fmt: skip
    assert results[0] == results[1]
    assert results[0][1].get("gap", 0) >= 1
