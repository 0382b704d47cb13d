"""Decoding packet batches: every parameter of simulated DEMOSAT and CUBEONE packets against an independent
decode by ccsdspy (layout CSVs and converters written by hand), the ccsdspy-csv mission format, the row
schemas, event dates, alarm columns, and every bad input (each input row lands in packets, rejects or both)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from satlake.ground.decode import (
    PACKET_REJECTS_SCHEMA,
    PACKETS_SCHEMA,
    PARAMETERS_SCHEMA,
    decode_batch,
    packet_table_schema,
)
from satlake.ground.simulate import encode_packet, simulate_packets
from satlake.ground.xtce import MissionDatabase, load_mission_database

from .conftest import FIXTURES, GROUND_TIME, START, packet_batch

TAI_1958, GPS_1980 = datetime(1958, 1, 1, tzinfo=UTC), datetime(1980, 1, 6, tzinfo=UTC)


def _poly(*highest_first: float) -> object:
    from ccsdspy.converters import PolyConverter

    return PolyConverter(list(highest_first))


def _enum(labels: dict[int, str]) -> object:
    from ccsdspy.converters import EnumConverter

    return EnumConverter(labels)


# The calibrations, written again by hand from the mission documents (not read from the XTCE).
DEMOSAT_CONVERTERS: dict[int, dict[str, Callable[[], object]]] = {
    100: {
        "SC_TIME": lambda: _poly(2**-16, 0),
        "MODE": lambda: _enum({0: "SAFE", 1: "NOMINAL", 2: "SCIENCE"}),
        "BATT_V": lambda: _poly(0.001, 0),
        "BATT_I": lambda: _poly(0.001, 0),
        "OBC_TEMP": lambda: _poly(0.01, 0),
    },
    101: {"SC_TIME": lambda: _poly(2**-16, 0)},
    102: {
        "SC_TIME": lambda: _poly(2**-16, 0),
        "SOLAR_I": lambda: _poly(0.002, -0.1),
        "HEATER": lambda: _enum({0: "OFF", 1: "ON", 2: "AUTO"}),
        "PANEL_TEMP": lambda: _poly(0.02, -20.0),
    },
}
CUBEONE_CONVERTERS: dict[int, dict[str, Callable[[], object]]] = {
    300: {
        "GPS_TIME": lambda: _poly(1 / 256, 0),
        "STATE": lambda: _enum({0: "IDLE", 1: "TX", 2: "RX", 3: "SAFE", 4: "LOWPOWER"}),
        "BATT_PCT": lambda: _poly(0.025, 0),
        "RSSI": lambda: _poly(0.5, 0),
    },
    301: {
        "GPS_TIME": lambda: _poly(1 / 256, 0),
        "EXPOSURE": lambda: _poly(1000.0, 0),
        "CCD_TEMP": lambda: _poly(0.01, -40.0),
        "FILTER": lambda: _enum({0: "CLEAR", 1: "RED", 2: "GREEN", 3: "BLUE"}),
    },
}


def _tai_to_utc(seconds: float) -> datetime:
    return TAI_1958 + timedelta(seconds=seconds - 37)  # TAI - UTC = 37 s since 2017


def _gps_to_utc(seconds: float) -> datetime:
    return GPS_1980 + timedelta(seconds=seconds - 18)  # GPS - UTC = 18 s since 2017


def _ccsdspy_decode(stream: bytes, layouts: Path, converters: dict[int, dict[str, Callable[[], object]]]) -> dict:
    from ccsdspy import FixedLength
    from ccsdspy.utils import split_by_apid

    streams = split_by_apid(io.BytesIO(stream))
    decoded = {}
    for layout in sorted(layouts.glob("*.csv")):
        apid = int(layout.stem.rsplit("apid", 1)[1])
        packet = FixedLength.from_file(str(layout))
        for field, make in converters[apid].items():
            packet.add_converted_field(field, f"{field}_eng", make())
        decoded[apid] = packet.load(streams[apid], include_primary_header=True)
    return decoded


@pytest.mark.parametrize(
    ("mission", "layouts", "converters", "to_utc"),
    [
        ("demosat", "demosat_layouts", DEMOSAT_CONVERTERS, _tai_to_utc),
        ("cubeone", "cubeone_layouts", CUBEONE_CONVERTERS, _gps_to_utc),
    ],
)
def test_every_parameter_matches_an_independent_ccsdspy_decode(
    request: pytest.FixtureRequest, mission: str, layouts: str, converters: dict, to_utc: Callable
) -> None:
    db: MissionDatabase = request.getfixturevalue(mission)
    packets = simulate_packets(db, start=START, seconds=150, seed=11)
    decoded = decode_batch(db, mission, packet_batch(packets))
    reference = _ccsdspy_decode(b"".join(packets), FIXTURES / layouts, converters)
    assert decoded.rejects.num_rows == 0
    assert decoded.packets.column("decode_error").null_count == len(packets)
    compared = 0
    for apid, packet_type in db.packet_types.items():
        table, expected = decoded.tables[packet_type.table], reference[apid]
        assert table.num_rows == len(expected["CCSDS_APID"]) > 10
        assert table.column("sequence_count").to_pylist() == expected["CCSDS_SEQUENCE_COUNT"].tolist()
        for p in packet_type.parameters:
            raw, eng = table.column(f"{p.column}_raw").to_pylist(), table.column(p.column).to_pylist()
            want_raw = expected[p.name].tolist()
            want_eng = expected[f"{p.name}_eng"].tolist() if f"{p.name}_eng" in expected else want_raw
            if p.kind == "string" and p.enumeration is None:  # ccsdspy strips the NUL padding
                assert [r.rstrip(b"\0") for r in raw] == want_raw
                assert eng == [w.decode() for w in want_raw]
            elif p.kind == "time":
                assert raw == want_raw
                assert eng == [to_utc(seconds) for seconds in want_eng]
            elif p.enumeration is not None:
                assert raw == want_raw and eng == want_eng
            elif p.kind == "bool":
                assert raw == want_raw and eng == [bool(r) for r in want_raw]
            else:
                assert raw == want_raw, p.name
                assert eng == pytest.approx(want_eng, rel=1e-12, abs=1e-12), p.name
            compared += len(raw)
        times = table.column("packet_time").to_pylist()
        assert times == table.column(packet_type.parameter(packet_type.time_parameter).column).to_pylist()
    assert compared == decoded.parameters.num_rows


def test_the_long_table_carries_the_same_values(demosat: MissionDatabase) -> None:
    packets = simulate_packets(demosat, start=START, seconds=20)
    decoded = decode_batch(demosat, "demosat", packet_batch(packets))
    hk = decoded.tables["hk"].to_pylist()[3]
    rows = decoded.parameters.filter(pc.equal(decoded.parameters.column("offset"), hk["offset"])).to_pylist()
    by_name = {row["parameter"]: row for row in rows}
    assert [row["parameter"] for row in rows] == ["SC_TIME", "MODE", "BATT_V", "BATT_I", "OBC_TEMP", "UPTIME"]
    assert by_name["BATT_V"]["eng_value"] == hk["batt_v"] and by_name["BATT_V"]["raw_value"] == hk["batt_v_raw"]
    assert by_name["BATT_V"]["unit"] == "V" and by_name["BATT_V"]["alarm_min_violations"] == 2
    assert (by_name["MODE"]["eng_value"], by_name["MODE"]["eng_text"]) == (float(hk["mode_raw"]), hk["mode"])
    assert by_name["SC_TIME"]["eng_value"] == hk["sc_time"].timestamp()
    assert by_name["SC_TIME"]["eng_text"] == hk["sc_time"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert by_name["UPTIME"]["alarm_min_violations"] is None  # no alarm defined
    assert {r["mission"] for r in rows} == {"demosat"} and {r["packet_type"] for r in rows} == {"HK"}
    power = decoded.parameters.filter(pc.equal(decoded.parameters.column("parameter"), "LAST_EVENT")).to_pylist()
    assert power[0]["eng_text"] == "NOMINAL" and power[0]["raw_value"] is None and power[0]["eng_value"] is None


def test_schemas(demosat: MissionDatabase) -> None:
    decoded = decode_batch(
        demosat, "demosat", packet_batch(simulate_packets(demosat, start=START, seconds=10, alarm=False))
    )
    assert decoded.packets.schema == PACKETS_SCHEMA
    assert decoded.parameters.schema == PARAMETERS_SCHEMA
    assert decoded.rejects.schema == PACKET_REJECTS_SCHEMA
    for packet_type in demosat.packet_types.values():
        assert decoded.tables[packet_type.table].schema == packet_table_schema(packet_type)
    nav = packet_table_schema(demosat.packet_types[101])
    assert (nav.field("eclipse").type, nav.field("eclipse_raw").type) == (pa.bool_(), pa.int64())
    assert (nav.field("sc_time").type, nav.field("pos_x_raw").type) == (pa.timestamp("us", tz="UTC"), pa.float64())
    empty = decode_batch(demosat, "demosat", packet_batch([]))
    assert (empty.packets.num_rows, empty.parameters.num_rows, empty.rejects.num_rows, empty.tables) == (0, 0, 0, {})


def test_the_simulated_excursion_shows_in_the_alarm_columns(demosat: MissionDatabase) -> None:
    decoded = decode_batch(demosat, "demosat", packet_batch(simulate_packets(demosat, start=START, seconds=120)))
    alarms = decoded.parameters.filter(pc.is_valid(decoded.parameters.column("alarm_severity"))).to_pylist()
    assert {(a["parameter"], a["alarm_severity"], a["alarm_limit"], a["alarm_min_violations"]) for a in alarms} == {
        ("PANEL_TEMP", "watch", -60.0, 3)
    }
    assert len(alarms) == 4  # minViolations + 1 consecutive samples


def _hk(db: MissionDatabase, count: int = 5, mode: str = "NOMINAL") -> bytes:
    values = {"MODE": mode, "BATT_V": 28.0, "BATT_I": 0.5, "OBC_TEMP": 21.5, "UPTIME": 1234}
    return encode_packet(db, "HK", values, sequence_count=count, time=START)


def _resized(packet: bytes, data: bytes) -> bytes:
    """The packet with another data field and a length field that agrees with it."""
    return packet[:4] + (len(data) - 1).to_bytes(2, "big") + data


def _bad_inputs(db: MissionDatabase) -> dict[str, bytes | None]:
    from spacepackets.ccsds.spacepacket import SpacePacketHeader

    good = _hk(db)
    unknown = bytes([good[0] & 0xF8 | 0x01, 0x2C]) + good[2:]  # APID 300
    bad_enum = bytearray(good)
    bad_enum[12] = 7  # MODE
    return {
        "good": good,
        "unknown": unknown,
        "short": _resized(good, good[6:-3]),
        "long": _resized(good, good[6:] + b"\x01\x02\x03"),
        "bad_enum": bytes(bad_enum),
        "no_secondary_header": bytes([good[0] & ~0x08]) + good[1:],
        "idle": bytes(SpacePacketHeader.tm(apid=2047, seq_count=0, data_len=3).pack()) + b"\xff" * 4,
        "version": bytes([good[0] | 0x20]) + good[1:],
        "length": good[:5] + bytes([good[5] + 1]) + good[6:],
        "truncated": good[:3],
        "empty": None,
    }


def test_every_bad_input_lands_in_packets_rejects_or_both(demosat: MissionDatabase) -> None:
    inputs = _bad_inputs(demosat)
    decoded = decode_batch(demosat, "demosat", packet_batch(list(inputs.values())))
    names = list(inputs)
    packets = {names[row["offset"]]: row for row in decoded.packets.to_pylist()}
    rejects = {names[row["offset"]]: row for row in decoded.rejects.to_pylist()}
    assert set(packets) | set(rejects) == set(names)
    assert set(packets) == {"good", "unknown", "short", "long", "bad_enum", "no_secondary_header"}
    errors = {name: row["decode_error"] for name, row in packets.items()}
    assert errors == {
        "good": None,
        "unknown": "unknown APID 300",
        "short": "packet shorter than its definition (20 bytes)",
        "long": "3 trailing bytes beyond the definition",
        "bad_enum": "value 7 is not in the enumeration of MODE",
        "no_secondary_header": "the header matches no packet type of demosat.xml for this APID",
    }
    assert packets["unknown"]["packet_type"] is None and packets["short"]["packet_type"] == "HK"
    assert packets["long"]["packet_time"] == START and packets["bad_enum"]["packet_time"] is None
    reasons = {name: (row["reason"], row["apid"]) for name, row in rejects.items()}
    assert reasons == {
        "unknown": ("unknown APID 300", 300),
        "short": ("packet shorter than its definition (20 bytes)", 100),
        "bad_enum": ("value 7 is not in the enumeration of MODE", 100),
        "no_secondary_header": ("the header matches no packet type of demosat.xml for this APID", 100),
        "idle": ("idle packet", 2047),
        "version": ("invalid primary header: version 1 (space packets are version 0)", None),
        "length": ("invalid primary header: its length field gives 24 bytes, the packet has 23", None),
        "truncated": ("truncated primary header (3 of 6 bytes)", None),
        "empty": ("truncated primary header (0 of 6 bytes)", None),
    }
    assert rejects["bad_enum"]["packet"] == inputs["bad_enum"] and rejects["empty"]["packet"] == b""
    assert {r["event_date"] for r in rejects.values()} == {GROUND_TIME.date()}
    hk = decoded.tables["hk"].to_pylist()  # the good and the longer packet, both with their values
    assert [(row["offset"], row["batt_v"], row["mode"], row["uptime"]) for row in hk] == [
        (names.index("good"), 28.0, "NOMINAL", 1234),
        (names.index("long"), 28.0, "NOMINAL", 1234),
    ]
    assert set(decoded.parameters.column("offset").to_pylist()) == {names.index("good"), names.index("long")}


def test_bad_inputs_of_a_ccsdspy_csv_mission(demosat: MissionDatabase) -> None:
    csv_mission = load_mission_database(FIXTURES / "demosat_layouts")
    inputs = _bad_inputs(demosat)
    names = list(inputs)
    decoded = decode_batch(csv_mission, "demosat", packet_batch(list(inputs.values())))
    errors = {names[r["offset"]]: r["decode_error"] for r in decoded.packets.to_pylist()}
    assert errors["short"] == "packet shorter than its definition (20 bytes)"
    assert errors["long"] == "3 trailing bytes beyond the definition"
    assert errors["bad_enum"] == "value 7 is not in the enumeration of MODE"
    assert errors["good"] is None and errors["unknown"] == "unknown APID 300"
    assert errors["no_secondary_header"] is None  # a layout CSV does not look at the header flags
    hk = decoded.tables["hk"].to_pylist()
    assert {row["batt_v"] for row in hk} == {28.0} and {row["sc_time"] for row in hk} == {START}
    assert len(hk) == 3


@pytest.mark.parametrize(
    ("time", "event_date"),
    [
        (datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC), datetime(2026, 2, 28).date()),  # onboard day wins
        (GROUND_TIME + timedelta(hours=23), (GROUND_TIME + timedelta(hours=23)).date()),
        (GROUND_TIME + timedelta(days=2), GROUND_TIME.date()),  # a clock far ahead is not believed
        (datetime(1989, 12, 31, tzinfo=UTC), GROUND_TIME.date()),  # a clock never set is not believed
    ],
)
def test_event_date(demosat: MissionDatabase, time: datetime, event_date: object) -> None:
    values = {"MODE": "SAFE", "BATT_V": 28.0, "BATT_I": 0.0, "OBC_TEMP": 20.0, "UPTIME": 1}
    packet = encode_packet(demosat, "HK", values, sequence_count=0, time=time)
    decoded = decode_batch(demosat, "demosat", packet_batch([packet]))
    assert decoded.packets.column("packet_time").to_pylist() == [time]
    assert decoded.packets.column("event_date").to_pylist() == [event_date]
    assert set(decoded.parameters.column("event_date").to_pylist()) == {event_date}
    assert decoded.tables["hk"].column("event_date").to_pylist() == [event_date]
    modes = decoded.parameters.filter(pc.equal(decoded.parameters.column("parameter"), "MODE")).to_pylist()
    assert modes[0]["alarm_severity"] == "warning"  # SAFE


def test_a_context_alarm_is_decided_by_the_same_packet(cubeone: MissionDatabase) -> None:
    def beacon(state: str, rssi: float, count: int) -> bytes:
        values = {"STATE": state, "CHARGING": False, "BATT_PCT": 25.0, "RSSI": rssi, "SPARE": 0}
        values |= {"RX_COUNT": 1, "LINK_MARGIN": 3.0}
        return encode_packet(cubeone, "Beacon", values, sequence_count=count, time=START)

    batch = packet_batch([beacon("TX", -110.0, 0), beacon("TX", -90.0, 1), beacon("IDLE", -110.0, 2)])
    rows = decode_batch(cubeone, "cubeone", batch).parameters
    battery = rows.filter(pc.equal(rows.column("parameter"), "BATT_PCT")).to_pylist()
    assert [(r["alarm_severity"], r["alarm_limit"], r["alarm_min_violations"]) for r in battery] == [
        ("warning", 30.0, 1),
        (None, None, 2),
        (None, None, 2),
    ]
    assert all(math.isclose(r["eng_value"], 25.0) for r in battery)
