"""The ground segment materialized in process on the embedded default: DEMOSAT's packets, generated from the XTCE
satlake ships, replayed into the mission's topic as a ground station's archive (in two parts, with faults in the
second), become raw/packets, bronze tables and gold.alarms through the sensor, the job and the automation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest
from spacepackets.ccsds.spacepacket import SpacePacket, SpacePacketHeader

from satlake.definitions import build_definitions
from satlake.ground.registry import MissionRecord, add_mission
from satlake.ground.replay import replay_to_log
from satlake.ground.simulate import simulate_packets
from satlake.ground.tables import (
    BRONZE_PACKET_REJECTS,
    BRONZE_PACKETS,
    BRONZE_PARAMETERS,
    BRONZE_SEQUENCE_EVENTS,
    GOLD_ALARMS,
    RAW_PACKETS,
    packet_type_table,
)
from satlake.resources import SatlakeResources, build_resources
from satlake.runner import check_results, run_failures, run_pending_work
from satlake.settings import Settings

DEMOSAT = Path(__file__).resolve().parents[2] / "satlake" / "ground" / "missions" / "demosat.xml"
HK_APID = 100


@dataclass
class Ground:
    settings: Settings
    resources: SatlakeResources
    mission: MissionRecord
    instance: dg.DagsterInstance
    packets: list[bytes]

    def publish(self, path: Path, data: bytes) -> int:
        path.write_bytes(data)
        summary = replay_to_log(self.resources.event_log, self.mission.topic, [path], station="svalbard",
                                known_apids=self.mission.apids)  # fmt: skip
        return summary.packets + summary.rejects

    def run(self) -> dict[str, tuple[bool, str]]:
        defs = build_definitions(self.settings)
        outcomes = run_pending_work(defs, self.instance)
        assert all(o.success for o in outcomes), run_failures(self.instance, outcomes)
        return check_results(self.instance, [o.run_id for o in outcomes])

    def rows(self, table: object, **filters: object) -> list[dict]:
        data = self.resources.lakehouse.read(table, filters=[(k, "=", v) for k, v in filters.items()] or None)  # type: ignore[arg-type]
        return data.to_pylist() if data is not None else []


@pytest.fixture
def ground(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ground]:
    monkeypatch.setenv("SATLAKE_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("SATLAKE_MODE", "embedded")
    settings = Settings.from_env()
    resources = build_resources(settings)
    mission, _ = add_mission(resources.lakehouse, settings, "demosat", DEMOSAT)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    packets = simulate_packets(mission.database, start=start, seconds=300)
    with dg.instance_for_test() as instance:
        yield Ground(settings, resources, mission, instance, packets)


def _apid(packet: bytes) -> int:
    return SpacePacketHeader.unpack(packet).apid


def _count(packet: bytes) -> int:
    return SpacePacketHeader.unpack(packet).seq_count


def test_packets_land_decoded_with_gaps_duplicates_rejects_and_one_alarm(ground: Ground, tmp_path: Path) -> None:
    half = len(ground.packets) // 2
    first, second = ground.packets[:half], ground.packets[half:]
    published = ground.publish(tmp_path / "part1.bin", b"".join(first))
    checks = ground.run()
    assert all(passed for passed, _ in checks.values()), checks  # a clean archive: every check passes

    # The second part: three housekeeping packets lost, one received twice, garbage, an unknown APID, a packet
    # shorter than its definition, and a stream cut in the middle of a packet.
    hk = [i for i, p in enumerate(second) if _apid(p) == HK_APID]
    lost = {hk[10], hk[11], hk[12]}
    duplicate = second[hk[3]]
    kept = [p for i, p in enumerate(second) if i not in lost]
    last_hk_count = _count(second[hk[-1]])
    unknown = bytes(SpacePacket(SpacePacketHeader.tm(300, 5, 3), None, b"\x01\x02\x03\x04").pack())
    short_header = SpacePacketHeader.tm(HK_APID, (last_hk_count + 1) % 16384, 3, sec_header_flag=True)
    short = bytes(SpacePacket(short_header, b"\0" * 4, None).pack())
    middle = len(kept) // 2
    stream = b"".join(kept[:middle]) + b"\xff\xee" * 8 + b"".join(kept[middle:]) + duplicate + unknown + short
    stream += second[0][:9]
    published += ground.publish(tmp_path / "part2.bin", stream)
    checks = ground.run()

    raw = ground.rows(RAW_PACKETS, mission="demosat")
    assert len(raw) == published  # every record of the log, exactly once
    packets = ground.rows(BRONZE_PACKETS, mission="demosat")
    assert len(packets) == len(first) + len(kept) + 2  # + the unknown APID and the short packet; the duplicate once
    keys = [(p["apid"], p["sequence_count"], p["packet_time"]) for p in packets]
    assert len(keys) == len(set(keys))

    events = ground.rows(BRONZE_SEQUENCE_EVENTS, mission="demosat")
    gaps = [e for e in events if e["kind"] == "gap"]
    assert [(e["apid"], e["missing"]) for e in gaps] == [(HK_APID, 3)]
    missing = [_count(second[i]) for i in sorted(lost)]
    assert gaps[0]["missing_counts"] == f"{missing[0]}..{missing[-1]}"
    assert [e["kind"] for e in events if e["kind"] != "gap"] == ["duplicate"]

    reasons = [r["reason"] for r in ground.rows(BRONZE_PACKET_REJECTS, mission="demosat")]
    assert len(reasons) == 4, reasons
    assert any("not a packet" in r for r in reasons)
    assert any("truncated" in r for r in reasons)
    assert any("APID 300" in r for r in reasons)
    assert any(r.startswith("packet shorter than its definition") for r in reasons)

    assert checks["bronze/packets:every_record_accounted"][0]
    assert not checks["bronze/packet_sequence_events:sequence_continuity"][0]
    assert "3 packets missing" in checks["bronze/packet_sequence_events:sequence_continuity"][1]
    assert not checks["bronze/packets:known_apids"][0]
    assert not checks["bronze/packet_rejects:packets_decoded"][0]

    # The housekeeping table: a typed column per parameter, calibrated and raw side by side, one row per packet.
    hk_rows = ground.rows(packet_type_table("demosat", "hk"))
    assert len(hk_rows) == sum(1 for p in first + kept if _apid(p) == HK_APID)
    sample = hk_rows[len(hk_rows) // 2]
    assert {"batt_v", "batt_v_raw", "mode", "mode_raw", "sc_time"} <= set(sample)
    parameters = {
        r["parameter"]: r
        for r in ground.rows(BRONZE_PARAMETERS, mission="demosat", partition=sample["partition"],
                             offset=sample["offset"])
    }  # fmt: skip
    assert parameters["BATT_V"]["eng_value"] == pytest.approx(sample["batt_v"])
    assert parameters["BATT_V"]["raw_value"] == sample["batt_v_raw"]
    assert parameters["MODE"]["eng_text"] == sample["mode"]
    assert parameters["BATT_V"]["unit"]

    # One alarm (the simulated excursion), raised at its minViolations-th consecutive violation, back to normal.
    (alarm,) = ground.rows(GOLD_ALARMS, mission="demosat")
    samples = sorted(
        (r for r in ground.rows(BRONZE_PARAMETERS, mission="demosat", parameter=alarm["parameter"])),
        key=lambda r: r["packet_time"],
    )
    violating = [i for i, r in enumerate(samples) if r["alarm_severity"] is not None]
    assert violating == list(range(violating[0], violating[0] + alarm["violations"]))  # consecutive
    assert alarm["triggered_at"] == samples[violating[0] + alarm["min_violations"] - 1]["packet_time"]
    assert alarm["returned_at"] == samples[violating[-1] + 1]["packet_time"]
    assert alarm["status"] == "returned_to_normal"


def test_a_second_run_with_nothing_new_writes_nothing(ground: Ground, tmp_path: Path) -> None:
    ground.publish(tmp_path / "all.bin", b"".join(ground.packets))
    ground.run()
    before = {t: len(ground.rows(t)) for t in (RAW_PACKETS, BRONZE_PACKETS, BRONZE_PARAMETERS)}
    ground.run()
    assert {t: len(ground.rows(t)) for t in before} == before
    assert before[BRONZE_PACKETS] == len(ground.packets)
    counts = pc.value_counts(
        ground.resources.lakehouse.read(BRONZE_PACKETS, columns=["packet_type"]).column("packet_type")
    ).to_pylist()
    assert {c["values"] for c in counts} == {"HK", "NAV", "PWR_THERMAL"}


def test_an_unreadable_record_in_the_topic_is_kept_and_rejected(ground: Ground) -> None:
    from satlake.resources.event_log import OutgoingRecord

    ground.resources.event_log.create_topic(ground.mission.topic, 4)
    ground.resources.event_log.append(ground.mission.topic, [OutgoingRecord(b"not an envelope", key=b"x")])
    ground.run()
    (raw,) = ground.rows(RAW_PACKETS)
    assert raw["kind"] == "not_an_envelope" and raw["packet"] == b"not an envelope"
    (reject,) = ground.rows(BRONZE_PACKET_REJECTS)
    assert reject["packet"] == b"not an envelope" and "envelope" in reject["reason"]
