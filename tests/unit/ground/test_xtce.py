"""Mission databases: the demo mission's XTCE (valid per the XTCE 1.2 schema, its packet types, parameters,
units, enumerations, times and checksum), ccsdspy layout CSVs, and every definition that must be refused with
the file, the element and the line."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
import space_packet_parser as spp

from satlake.ground.xtce import MissionDatabase, MissionDefinitionError, column_name, load_mission_database

from .conftest import CUBEONE_XML, DEMOSAT_XML, FIXTURES


def test_demosat_is_valid_xtce_1_2() -> None:
    result = spp.validate_xtce(DEMOSAT_XML, level="all", allow_schema_download=False)
    assert result.valid, result
    assert spp.validate_xtce(CUBEONE_XML, level="all", allow_schema_download=False).valid


def test_demosat_packet_types(demosat: MissionDatabase) -> None:
    assert demosat.format == "xtce"
    assert demosat.source == "demosat.xml"
    assert demosat.checksum == hashlib.sha256(DEMOSAT_XML.read_bytes()).hexdigest()
    assert {apid: (t.name, t.table, t.time_parameter) for apid, t in demosat.packet_types.items()} == {
        100: ("HK", "hk", "SC_TIME"),
        101: ("NAV", "nav", "SC_TIME"),
        102: ("PWR_THERMAL", "pwr_thermal", "SC_TIME"),
    }
    hk = demosat.packet_type("HK")
    summary = {p.name: (p.column, p.kind, p.unit, p.calibrated, p.raw_kind) for p in hk.parameters}
    assert summary == {
        "SC_TIME": ("sc_time", "time", "s", True, "int"),
        "MODE": ("mode", "string", "", False, "int"),
        "BATT_V": ("batt_v", "float", "V", True, "int"),
        "BATT_I": ("batt_i", "float", "A", True, "int"),
        "OBC_TEMP": ("obc_temp", "float", "degC", True, "int"),
        "UPTIME": ("uptime", "int", "s", False, "int"),
    }  # the primary header fields are not parameters of a packet type
    assert hk.parameter("MODE").enumeration == {0: "SAFE", 1: "NOMINAL", 2: "SCIENCE"}
    assert hk.parameter("SC_TIME").epoch is not None and hk.parameter("SC_TIME").epoch.name == "TAI"
    nav = {p.name: (p.kind, p.unit, p.raw_kind) for p in demosat.packet_type("NAV").parameters}
    assert nav["POS_X"] == ("float", "km", "float")
    assert nav["VEL_Z"] == ("float", "km/s", "float")
    assert nav["ECLIPSE"] == ("bool", "", "int")
    power = {p.name: (p.kind, p.unit, p.raw_kind) for p in demosat.packet_type("PWR_THERMAL").parameters}
    assert power["LAST_EVENT"] == ("string", "", "binary")
    assert power["SOLAR_I"] == ("float", "A", "int")
    assert set(demosat.alarms) == {"MODE", "BATT_V", "OBC_TEMP", "PANEL_TEMP"}
    with pytest.raises(KeyError, match="defines no packet type 'EVENTS'"):
        demosat.packet_type("EVENTS")


def test_a_second_layout_of_xtce(cubeone: MissionDatabase) -> None:
    """Default namespace, a ContainerRefEntry secondary header with a GPS time, a ComparisonList on the APID."""
    assert {apid: t.name for apid, t in cubeone.packet_types.items()} == {300: "Beacon", 301: "PayloadImage"}
    beacon = cubeone.packet_types[300]
    assert [p.name for p in beacon.parameters][:3] == ["GPS_TIME", "STATE", "CHARGING"]
    assert beacon.parameter("GPS_TIME").epoch.name == "GPS"  # type: ignore[union-attr]
    assert cubeone.packet_types[301].table == "payload_image"
    assert set(cubeone.alarms) == {"STATE", "BATT_PCT"}


def test_bytes_and_path_give_the_same_database() -> None:
    from_bytes = load_mission_database(DEMOSAT_XML.read_bytes(), name="demosat.xml")
    from_path = load_mission_database(DEMOSAT_XML)
    assert from_bytes == from_path
    assert load_mission_database(DEMOSAT_XML.read_bytes()).source == "<definition>"


def test_loading_in_threads_is_safe() -> None:
    results: list[object] = []

    def load(path: Path) -> None:
        try:
            results.append(len(load_mission_database(path).packet_types))
        except Exception as exc:  # pragma: no cover - what the test would report
            results.append(exc)

    threads = [threading.Thread(target=load, args=(p,)) for p in [DEMOSAT_XML, CUBEONE_XML] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [2] * 4 + [3] * 4  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("name", "expected"), [("BATT_V", "batt_v"), ("battTemp", "batt_temp"), ("3V3 rail", "p_3v3_rail")]
)
def test_column_names(name: str, expected: str) -> None:
    assert column_name(name) == expected


def test_the_bad_fixtures_differ_from_a_valid_twin_by_their_one_defect() -> None:
    tiny = load_mission_database(FIXTURES / "tiny.xml")
    assert [(apid, t.name, [p.name for p in t.parameters]) for apid, t in tiny.packet_types.items()] == [
        (5, "POWER", ["BATT_V"])
    ]


def test_malformed_xml_names_file_and_line() -> None:
    with pytest.raises(MissionDefinitionError) as error:
        load_mission_database(FIXTURES / "bad" / "malformed.xml")
    assert str(error.value).startswith("malformed.xml line 7: not well-formed XML: Opening and ending tag mismatch")


def test_an_unknown_type_reference_names_file_element_and_line() -> None:
    with pytest.raises(MissionDefinitionError) as error:
        load_mission_database(FIXTURES / "bad" / "unknown_type.xml")
    assert str(error.value) == (
        "unknown_type.xml line 28: ParameterTypeRef 'FOO_TYPE' of parameter 'BATT_V' names no parameter type"
    )


def test_no_concrete_packet_type_is_refused() -> None:
    with pytest.raises(MissionDefinitionError, match=r"no_packet_types\.xml: no concrete packet type"):
        load_mission_database(FIXTURES / "bad" / "no_packet_types.xml")


def _demosat_with(old: bytes, new: bytes) -> bytes:
    xml = DEMOSAT_XML.read_bytes()
    assert old in xml
    return xml.replace(old, new)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            b'<xtce:ParameterRefEntry parameterRef="UPTIME"/>',
            b'<xtce:ParameterRefEntry parameterRef="UPTIME_S"/>',
            r"demosat.xml line \d+: ParameterRef 'UPTIME_S' of SequenceContainer 'HK' names no parameter",
        ),
        (
            b'<xtce:BaseContainer containerRef="TlmSecHdr">\n          <xtce:RestrictionCriteria>\n'
            b'            <xtce:Comparison parameterRef="PKT_APID" value="101"',
            b'<xtce:BaseContainer containerRef="TlmSecHdr">\n          <xtce:RestrictionCriteria>\n'
            b'            <xtce:Comparison parameterRef="PKT_APID" value="100"',
            "containers 'HK' and 'NAV' both have APID 100",
        ),
        (
            b'<xtce:Comparison parameterRef="PKT_APID" value="102" useCalibratedValue="false"/>',
            b'<xtce:Comparison parameterRef="SEC_HDR_FLG" value="1" useCalibratedValue="false"/>',
            "cannot find the APID of container 'PWR_THERMAL'",
        ),
        (b'name="CCSDSPacket"', b'name="Packet"', "ContainerRef 'CCSDSPacket' of SequenceContainer 'TlmSecHdr'"),
        (
            b'<xtce:Parameter name="BATT_I" parameterTypeRef="BATT_I_Type"',
            b'<xtce:Parameter name="batt v" parameterTypeRef="BATT_I_Type"',
            "ParameterRef 'BATT_I' of SequenceContainer 'HK'",
        ),
        (
            b'<xtce:FloatDataEncoding sizeInBits="32" encoding="IEEE754_1985"/>\n      </xtce:FloatParameterType>\n'
            b'      <xtce:FloatParameterType name="VELOCITY_Type">',
            b'<xtce:FloatDataEncoding sizeInBits="24" encoding="IEEE754_1985"/>\n      </xtce:FloatParameterType>\n'
            b'      <xtce:FloatParameterType name="VELOCITY_Type">',
            "space_packet_parser cannot read the definition: ValueError: Invalid size_in_bits value",
        ),
    ],
)
def test_definitions_that_are_refused(old: bytes, new: bytes, message: str) -> None:
    with pytest.raises(MissionDefinitionError, match=message):
        load_mission_database(_demosat_with(old, new), name="demosat.xml")


def test_a_parameter_whose_column_collides_is_refused() -> None:
    xml = _demosat_with(b'"UPTIME"', b'"OFFSET"')
    with pytest.raises(MissionDefinitionError, match="parameter 'OFFSET' of packet type 'HK' would be column 'offset'"):
        load_mission_database(xml, name="demosat.xml")


def test_ccsdspy_layout_csvs_as_a_mission(tmp_path: Path) -> None:
    layouts = FIXTURES / "demosat_layouts"
    db = load_mission_database(layouts)
    assert db.format == "ccsdspy-csv"
    assert {apid: t.name for apid, t in db.packet_types.items()} == {100: "hk", 101: "nav", 102: "pwr_thermal"}
    hk = db.packet_types[100]
    assert {p.name: (p.kind, p.unit, p.calibrated) for p in hk.parameters} == {
        "SC_TIME": ("time", "s", True),
        "MODE": ("string", "", False),
        "BATT_V": ("float", "V", True),
        "BATT_I": ("float", "A", True),
        "OBC_TEMP": ("float", "degC", True),
        "UPTIME": ("int", "s", False),
    }
    assert hk.time_parameter == "SC_TIME" and hk.parameter("MODE").enumeration == {
        0: "SAFE",
        1: "NOMINAL",
        2: "SCIENCE",
    }
    single = (layouts / "hk_apid100.csv").read_bytes()
    one = load_mission_database(single, name="hk_apid100.csv")
    assert list(one.packet_types) == [100] and one.checksum == hashlib.sha256(single).hexdigest()
    assert load_mission_database(layouts).checksum == db.checksum  # a directory's digest is stable


@pytest.mark.parametrize(
    ("file_name", "text", "message"),
    [
        ("hk.csv", "name, data_type, bit_length\nA, uint, 8\n", "the file name must carry the APID"),
        ("hk_apid9.csv", "name, bit_length\nA, 8\n", "missing column(s) data_type"),
        ("hk_apid9.csv", "name, data_type, bit_length\nA, double, 8\n", "line 2: field 'A' has data_type 'double'"),
        ("hk_apid9.csv", "name, data_type, bit_length\nA, uint, 7\n", "add up to 55 bits, not whole bytes"),
        ("hk_apid9.csv", "name, data_type, bit_length\nA, uint, 4\nB, float, 32\nC, uint, 4\n", "not byte aligned"),
        ("hk_apid9.csv", "name,data_type,bit_length,epoch\nT,uint,32,MARS\n", "line 2: field 'T': unknown epoch"),
        ("hk_apid9.csv", "name,data_type,bit_length,enumeration\nM,uint,8,0:A\n", "is not value=LABEL"),
        ("hk_apid9.csv", "name,data_type,bit_length\nOFFSET,uint,8\n", "would be column 'offset'"),
        ("hk_apid9.csv", "name,data_type,bit_length,enumeration\nM,float,32,0=A\n", "enumerations on integers"),
    ],
)
def test_bad_layout_csvs(file_name: str, text: str, message: str) -> None:
    with pytest.raises(MissionDefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_mission_database(text.encode(), name=file_name)
