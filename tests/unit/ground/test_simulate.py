"""Packets generated from XTCE: the encoder (headers from spacepackets, every encoding of the subset, decoded
back by space_packet_parser), its refusals, and the simulated stream (interleaving, per-APID 14-bit sequence
counts, orbit-like values, and exactly one alarm that comes back to normal)."""

from __future__ import annotations

import itertools
import math
import struct
from collections import Counter
from datetime import UTC, datetime, timedelta

import pyarrow.compute as pc
import pytest
from spacepackets.ccsds.spacepacket import SpacePacketHeader

from satlake.ground.decode import decode_batch
from satlake.ground.simulate import ORBIT_PERIOD_S, alarm_targets, encode_packet, simulate_packets
from satlake.ground.xtce import MissionDatabase, load_mission_database

from .conftest import START, packet_batch


def test_encode_packet_headers_and_values_decode_back(demosat: MissionDatabase) -> None:
    values = {"MODE": "SCIENCE", "BATT_V": 27.345, "BATT_I": -1.234, "OBC_TEMP": -12.34, "UPTIME": 4_000_000_000}
    packet = encode_packet(demosat, "HK", values, sequence_count=16383, time=START + timedelta(seconds=0.5))
    header = SpacePacketHeader.unpack(packet)
    assert (header.apid, header.seq_count, header.sec_header_flag, header.packet_len) == (100, 16383, True, 23)
    parsed = demosat.definition.parse_bytes(packet)  # type: ignore[attr-defined]
    assert parsed["MODE"] == "SCIENCE" and parsed["MODE"].raw_value == 2
    assert parsed["BATT_V"].raw_value == 27345 and parsed["BATT_I"].raw_value == -1234
    assert parsed["OBC_TEMP"].raw_value == -1234 and parsed["UPTIME"] == 4_000_000_000
    tai_seconds = (START - datetime(1958, 1, 1, tzinfo=UTC)).total_seconds() + 37 + 0.5
    assert parsed["SC_TIME"] == tai_seconds and parsed["SC_TIME"].raw_value == tai_seconds * 65536
    assert encode_packet(demosat, "HK", values, sequence_count=16384, time=START)[2:4] == b"\xc0\x00"  # wraps


def test_encode_unaligned_fields_floats_and_flags(cubeone: MissionDatabase) -> None:
    beacon = {"STATE": "RX", "CHARGING": True, "BATT_PCT": 87.5, "RSSI": -101.5, "SPARE": 9}
    beacon |= {"RX_COUNT": 0xABCDEF, "LINK_MARGIN": -3.0625}
    parsed = cubeone.definition.parse_bytes(encode_packet(cubeone, "Beacon", beacon, sequence_count=1, time=START))  # type: ignore[attr-defined]
    assert {name: parsed[name] for name in beacon} == beacon
    assert parsed["GPS_TIME"] == (START - datetime(1980, 1, 6, tzinfo=UTC)).total_seconds() + 18
    image = {"IMG_ID": 65535, "EXPOSURE": 12.5, "CCD_TEMP": -39.99, "FILTER": "BLUE", "GAIN": 63}
    parsed = cubeone.definition.parse_bytes(encode_packet(cubeone, "PayloadImage", image, sequence_count=2, time=START))  # type: ignore[attr-defined]
    float32 = struct.unpack(">f", struct.pack(">f", 0.0125))[0]  # the calibrator divides 12.5 ms by 1000
    assert parsed["EXPOSURE"].raw_value == float32 and parsed["EXPOSURE"] == float32 * 1000
    assert parsed["CCD_TEMP"].raw_value == 1 and parsed["FILTER"].raw_value == 3 and parsed["GAIN"] == 63


BYTE_ORDERS = """<SpaceSystem xmlns="http://www.omg.org/spec/XTCE/20180204" name="LE"><TelemetryMetaData>
<ParameterTypeSet>
  <IntegerParameterType name="U1"><IntegerDataEncoding sizeInBits="1"/></IntegerParameterType>
  <IntegerParameterType name="U2"><IntegerDataEncoding sizeInBits="2"/></IntegerParameterType>
  <IntegerParameterType name="U3"><IntegerDataEncoding sizeInBits="3"/></IntegerParameterType>
  <IntegerParameterType name="U11"><IntegerDataEncoding sizeInBits="11"/></IntegerParameterType>
  <IntegerParameterType name="U14"><IntegerDataEncoding sizeInBits="14"/></IntegerParameterType>
  <IntegerParameterType name="U16"><IntegerDataEncoding sizeInBits="16"/></IntegerParameterType>
  <IntegerParameterType name="LE16" signed="true">
    <IntegerDataEncoding sizeInBits="16" encoding="twosComplement" byteOrder="leastSignificantByteFirst"/>
  </IntegerParameterType>
  <IntegerParameterType name="S5" signed="true"><IntegerDataEncoding sizeInBits="5" encoding="twosComplement"/>
  </IntegerParameterType>
  <IntegerParameterType name="U64"><IntegerDataEncoding sizeInBits="64"/></IntegerParameterType>
  <FloatParameterType name="F16"><FloatDataEncoding sizeInBits="16"/></FloatParameterType>
  <FloatParameterType name="LEF32"><FloatDataEncoding sizeInBits="32" byteOrder="leastSignificantByteFirst"/>
  </FloatParameterType>
  <IntegerParameterType name="U3b"><IntegerDataEncoding sizeInBits="3"/></IntegerParameterType>
</ParameterTypeSet>
<ParameterSet>
  <Parameter name="VERSION" parameterTypeRef="U3"/><Parameter name="TYPE" parameterTypeRef="U1"/>
  <Parameter name="SEC_HDR_FLG" parameterTypeRef="U1"/><Parameter name="PKT_APID" parameterTypeRef="U11"/>
  <Parameter name="SEQ_FLGS" parameterTypeRef="U2"/><Parameter name="SRC_SEQ_CTR" parameterTypeRef="U14"/>
  <Parameter name="PKT_LEN" parameterTypeRef="U16"/>
  <Parameter name="A" parameterTypeRef="LE16"/><Parameter name="B" parameterTypeRef="S5"/>
  <Parameter name="C" parameterTypeRef="U3b"/><Parameter name="D" parameterTypeRef="U64"/>
  <Parameter name="E" parameterTypeRef="F16"/><Parameter name="F" parameterTypeRef="LEF32"/>
</ParameterSet>
<ContainerSet>
  <SequenceContainer name="CCSDSPacket" abstract="true"><EntryList>
    <ParameterRefEntry parameterRef="VERSION"/><ParameterRefEntry parameterRef="TYPE"/>
    <ParameterRefEntry parameterRef="SEC_HDR_FLG"/><ParameterRefEntry parameterRef="PKT_APID"/>
    <ParameterRefEntry parameterRef="SEQ_FLGS"/><ParameterRefEntry parameterRef="SRC_SEQ_CTR"/>
    <ParameterRefEntry parameterRef="PKT_LEN"/></EntryList></SequenceContainer>
  <SequenceContainer name="LITTLE"><EntryList>
    <ParameterRefEntry parameterRef="A"/><ParameterRefEntry parameterRef="B"/><ParameterRefEntry parameterRef="C"/>
    <ParameterRefEntry parameterRef="D"/><ParameterRefEntry parameterRef="E"/><ParameterRefEntry parameterRef="F"/>
    </EntryList>
    <BaseContainer containerRef="CCSDSPacket"><RestrictionCriteria>
      <Comparison parameterRef="PKT_APID" value="7" useCalibratedValue="false"/></RestrictionCriteria></BaseContainer>
  </SequenceContainer>
</ContainerSet></TelemetryMetaData></SpaceSystem>"""


def test_byte_orders_signed_sizes_and_half_floats() -> None:
    db = load_mission_database(BYTE_ORDERS.encode(), name="le.xml")
    values = {"A": -2, "B": -16, "C": 5, "D": 2**64 - 1, "E": 0.5, "F": 1.5}
    packet = encode_packet(db, "LITTLE", values, sequence_count=3)
    assert SpacePacketHeader.unpack(packet).sec_header_flag is False  # no time: no secondary header
    assert packet[6:8] == b"\xfe\xff"  # -2, least significant byte first
    assert packet[8] == 0b10000101  # -16 in 5 bits, then 5 in 3 bits
    parsed = db.definition.parse_bytes(packet)  # type: ignore[attr-defined]
    assert {name: parsed[name] for name in values} == values


@pytest.mark.parametrize(
    ("packet_type", "values", "message"),
    [
        ("HK", {"BATT_V": 70.0}, r"BATT_V: raw value 70000 does not fit 16 bits \(0..65535\)"),
        ("HK", {"MODE": "PANIC"}, "MODE: 'PANIC' is not a label of its enumeration"),
        ("HK", {"UPTIME": None}, "no value for parameter 'UPTIME' of packet type 'HK'"),
        ("PWR_THERMAL", {"LAST_EVENT": "A MUCH TOO LONG EVENT TEXT"}, "LAST_EVENT: 27 bytes do not fit 16"),
        ("EVENTS", {}, "defines no packet type 'EVENTS'"),
    ],
)
def test_encode_refuses_what_the_definition_cannot_carry(
    demosat: MissionDatabase, packet_type: str, values: dict, message: str
) -> None:
    base = {"MODE": "NOMINAL", "BATT_V": 28.0, "BATT_I": 0.0, "OBC_TEMP": 20.0, "UPTIME": 1}
    base |= {"SOLAR_I": 1.0, "HEATER": "ON", "PANEL_TEMP": 0.0, "LAST_EVENT": "OK"}
    with pytest.raises((ValueError, KeyError), match=message):
        encode_packet(demosat, packet_type, base | values, sequence_count=0, time=START)


def test_encode_refuses_a_layout_csv_mission() -> None:
    from .conftest import FIXTURES

    with pytest.raises(ValueError, match="from XTCE definitions only"):
        encode_packet(load_mission_database(FIXTURES / "demosat_layouts"), "hk", {}, sequence_count=0)


def test_the_stream_interleaves_every_type_with_its_own_sequence_counts(demosat: MissionDatabase) -> None:
    packets = simulate_packets(demosat, start=START, seconds=300)
    assert packets == simulate_packets(demosat, start=START, seconds=300)  # deterministic by seed
    assert packets != simulate_packets(demosat, start=START, seconds=300, seed=8)
    headers = [SpacePacketHeader.unpack(p) for p in packets]
    assert Counter(h.apid for h in headers) == {100: 300, 101: 150, 102: 60}
    assert [h.apid for h in headers[:4]] == [100, 101, 102, 100]
    for apid in (100, 101, 102):
        counts = [h.seq_count for h in headers if h.apid == apid]
        assert all((b - a) % 16384 == 1 for a, b in itertools.pairwise(counts))
        assert 0 in counts  # started near the top: the 14-bit counter wraps within the run
    times = decode_batch(demosat, "demosat", packet_batch(packets)).packets.column("packet_time").to_pylist()
    assert times == sorted(times) and times[0] == START and times[-1] < START + timedelta(seconds=300)


def test_exactly_one_alarm_that_returns_to_normal(demosat: MissionDatabase, cubeone: MissionDatabase) -> None:
    for db, seconds in ((demosat, 600), (cubeone, 200)):
        rows = decode_batch(db, "m", packet_batch(simulate_packets(db, start=START, seconds=seconds))).parameters
        raised = []
        for parameter in set(rows.column("parameter").to_pylist()):
            samples = rows.filter(pc.equal(rows.column("parameter"), parameter)).to_pylist()
            run = 0
            for sample in samples:
                run = run + 1 if sample["alarm_severity"] else 0
                if run == (sample["alarm_min_violations"] or math.inf):  # an operator would be alerted now
                    raised.append((parameter, sample["alarm_severity"]))
            assert samples[-1]["alarm_severity"] is None  # back to normal by the end
        parameter = alarm_targets(db)[0][1]
        assert raised == [(parameter.name, "watch" if db is demosat else "warning")]
        quiet = decode_batch(db, "m", packet_batch(simulate_packets(db, start=START, seconds=seconds, alarm=False)))
        assert quiet.parameters.column("alarm_severity").null_count == quiet.parameters.num_rows


def test_values_follow_an_orbit(demosat: MissionDatabase) -> None:
    packets = simulate_packets(demosat, start=START, seconds=int(ORBIT_PERIOD_S), alarm=False)
    by_apid = {apid: [p for p in packets if SpacePacketHeader.unpack(p).apid == apid] for apid in (100, 101)}
    nav = decode_batch(demosat, "demosat", packet_batch(by_apid[101])).tables["nav"].to_pylist()
    for row in nav[::50]:
        assert math.hypot(row["pos_x"], row["pos_y"], row["pos_z"]) == pytest.approx(6878.0, rel=1e-6)
        assert math.hypot(row["vel_x"], row["vel_y"], row["vel_z"]) == pytest.approx(7.61, rel=1e-6)
    eclipse = sum(row["eclipse"] for row in nav) / len(nav)
    assert 0.3 < eclipse < 0.45  # a low Earth orbit spends about a third of its period in the shadow
    hk = decode_batch(demosat, "demosat", packet_batch(by_apid[100][:700])).tables["hk"].to_pylist()
    assert {row["mode"] for row in hk} == {"NOMINAL", "SCIENCE"}  # never SAFE: that would be an alarm
    assert hk[-1]["uptime"] - hk[0]["uptime"] == len(hk) - 1
