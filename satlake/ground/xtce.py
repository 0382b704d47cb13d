"""A mission's packet definitions (its "mission database"): an XTCE document read with space_packet_parser, or
ccsdspy layout CSVs, turned into the packet types, parameters, units, times and alarms satlake decodes with.

Mission definitions are data: ``load_mission_database`` validates one and names the file, the element and the
line of anything it cannot use, so a bad definition is refused when it is registered, not when packets arrive.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from satlake.ground.alarms import AlarmDefinitionError, ParameterAlarms, parse_alarms
from satlake.ground.epochs import Epoch, UnknownEpochError, resolve_epoch

ROOT_CONTAINER = "CCSDSPacket"
APID_PARAMETER = "PKT_APID"
# Columns every per-type table starts with (decode.packet_table_schema): a parameter may not take their names.
FIXED_COLUMNS = frozenset(
    ("mission", "apid", "sequence_count", "packet_time", "ground_time", "station", "topic", "partition", "offset")
) | {"event_date"}
# space_packet_parser keeps the XML namespace of the document being read as class-level state.
_SPP_LOAD_LOCK = threading.Lock()


class MissionDefinitionError(ValueError):
    """A mission definition satlake cannot use; the message names the file, the element and the line."""


@dataclass(frozen=True)
class ParameterInfo:
    """One parameter of a packet type. ``kind`` is the type of its engineering value ("int", "float", "string",
    "bool", "time", "binary"), ``raw_kind`` the type of its raw value ("int", "float", "binary"); an enumeration
    is a "string" whose raw value is the number; ``epoch`` is set for times."""

    name: str
    column: str
    kind: str
    unit: str
    enumeration: Mapping[int, str] | None
    calibrated: bool
    raw_kind: str = "int"
    epoch: Epoch | None = None


@dataclass(frozen=True)
class PacketType:
    """A concrete packet type (a non-abstract container) and its APID; ``parameters`` leaves out the primary
    header fields and includes the secondary header (``time_parameter`` names its AbsoluteTime parameter)."""

    name: str
    apid: int
    table: str
    parameters: tuple[ParameterInfo, ...]
    time_parameter: str | None

    def parameter(self, name: str) -> ParameterInfo:
        return next(p for p in self.parameters if p.name == name)


@dataclass(frozen=True)
class MissionDatabase:
    """A loaded mission definition. ``definition`` is what decodes it: a space_packet_parser
    ``XtcePacketDefinition`` (format "xtce") or the ``layouts.CsvLayout`` by APID (format "ccsdspy-csv")."""

    source: str
    format: str
    checksum: str
    packet_types: Mapping[int, PacketType]
    alarms: Mapping[str, ParameterAlarms]
    definition: object = field(default=None, repr=False, compare=False)

    def packet_type(self, name: str) -> PacketType:
        """The packet type called ``name`` (its container name); KeyError naming the known ones."""
        for packet_type in self.packet_types.values():
            if packet_type.name == name:
                return packet_type
        known = ", ".join(p.name for p in self.packet_types.values())
        raise KeyError(f"{self.source} defines no packet type {name!r} (it defines {known})")


def load_mission_database(source: Path | bytes, *, name: str | None = None) -> MissionDatabase:
    """Load and validate a mission definition.

    ``source`` is a file, a directory or the definition's bytes; ``name`` is the file name errors and
    ``MissionDatabase.source`` show (default: the path's name). The format is XTCE unless the name ends in
    ``.csv`` or the path is a directory: then it is ccsdspy layout CSVs, one per packet type
    (``satlake.ground.layouts.CsvLayout`` describes them). ``checksum`` is the sha256 of the definition bytes
    (of a directory: of every CSV's name and bytes, in name order). Raises ``MissionDefinitionError``.
    """
    if isinstance(source, bytes | bytearray):
        data, label = bytes(source), name or "<definition>"
        is_csv = label.lower().endswith(".csv") or (name is None and data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] != b"<")
        if is_csv:
            from satlake.ground.layouts import load_csv_layouts

            return load_csv_layouts({label: data}, label, hashlib.sha256(data).hexdigest())
        return _load_xtce(data, label)
    path = Path(source)
    label = name or path.name
    from satlake.ground.layouts import load_csv_layouts

    if path.is_dir():
        files = {p.name: p.read_bytes() for p in sorted(path.glob("*.csv"))}
        digest = hashlib.sha256(b"".join(n.encode() + b"\0" + d + b"\0" for n, d in files.items())).hexdigest()
        return load_csv_layouts(files, label, digest)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MissionDefinitionError(f"cannot read mission definition {path}: {exc.strerror or exc}") from exc
    if path.suffix.lower() == ".csv":
        return load_csv_layouts({path.name: data}, label, hashlib.sha256(data).hexdigest())
    return _load_xtce(data, label)


def column_name(name: str) -> str:
    """A lower snake case SQL column name: ``BATT_V`` -> ``batt_v``, ``battTemp`` -> ``batt_temp``."""
    snake = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name)
    snake = re.sub(r"[^0-9a-zA-Z]+", "_", snake).strip("_").lower()
    return f"p_{snake}" if not snake or snake[0].isdigit() else snake


def check_columns(source: str, packet_type: str, parameters: tuple[ParameterInfo, ...]) -> None:
    """Refuse parameters whose columns collide with each other or with the fixed columns of the table."""
    seen: dict[str, str] = {}
    taken = {p.column for p in parameters}
    for parameter in parameters:
        column = parameter.column
        clash = seen.get(column) or seen.get(f"{column}_raw")
        if column in FIXED_COLUMNS or clash or (column.endswith("_raw") and column[:-4] in taken):
            other = clash or ("a column every packet table has" if column in FIXED_COLUMNS else "a raw column")
            raise MissionDefinitionError(
                f"{source}: parameter {parameter.name!r} of packet type {packet_type!r} would be column {column!r}, "
                f"which is already {other}: rename the parameter"
            )
        seen[column] = f"the column of parameter {parameter.name!r}"


# XTCE ---------------------------------------------------------------------------------------------------------


def _load_xtce(data: bytes, source: str) -> MissionDatabase:
    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
    except etree.XMLSyntaxError as exc:
        line = f" line {exc.lineno}" if exc.lineno else ""
        raise MissionDefinitionError(f"{source}{line}: not well-formed XML: {exc.msg}") from exc
    _check_references(root, source)
    try:
        alarms = parse_alarms(root, source)
    except AlarmDefinitionError as exc:
        raise MissionDefinitionError(str(exc)) from exc
    definition = _spp_definition(data, source)
    packet_types = _packet_types(definition, root, source)
    return MissionDatabase(source, "xtce", hashlib.sha256(data).hexdigest(), packet_types, alarms, definition)


def _spp_definition(data: bytes, source: str) -> object:
    import space_packet_parser as spp

    with _SPP_LOAD_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a document without the XTCE namespace still reads
        try:
            return spp.XtcePacketDefinition.from_xtce(io.BytesIO(data), root_container_name=ROOT_CONTAINER)
        except Exception as exc:  # space_packet_parser raises KeyError, ValueError, NotImplementedError, ...
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise MissionDefinitionError(f"{source}: space_packet_parser cannot read the definition: {detail}") from exc


def _check_references(root: etree._Element, source: str) -> None:
    """Every name a definition refers to must exist: space_packet_parser would fail with a bare KeyError."""

    def named(kind: str) -> set[str]:
        return set(root.xpath(f'//*[local-name()="{kind}"]/*/@name'))

    if not root.xpath('./*[local-name()="TelemetryMetaData"]'):
        raise MissionDefinitionError(f"{source}: no TelemetryMetaData element: is this an XTCE SpaceSystem?")
    types, parameters = named("ParameterTypeSet"), named("ParameterSet")
    containers = set(root.xpath('//*[local-name()="ContainerSet"]/*[local-name()="SequenceContainer"]/@name'))
    checks = (
        ("Parameter", "parameterTypeRef", types, "parameter type"),
        ("ParameterRefEntry", "parameterRef", parameters, "parameter"),
        ("ContainerRefEntry", "containerRef", containers, "container"),
        ("BaseContainer", "containerRef", containers, "container"),
        ("Comparison", "parameterRef", parameters, "parameter"),
    )
    for tag, attribute, known, target in checks:
        for element in root.xpath(f'//*[local-name()="{tag}"]'):
            reference = element.get(attribute)
            if reference is None or reference in known:
                continue
            # a parameter names itself; any other reference is named by the nearest element with a name
            owner = element if tag == "Parameter" else _named_ancestor(element)
            owner_text = (
                "parameter" if tag == "Parameter" else etree.QName(owner).localname if owner is not None else ""
            )
            owner_text += f" {owner.get('name')!r}" if owner is not None else "the document"
            raise MissionDefinitionError(
                f"{source} line {element.sourceline}: {attribute[0].upper()}{attribute[1:]} {reference!r} of "
                f"{owner_text.strip()} names no {target}"
            )


def _named_ancestor(element: etree._Element) -> etree._Element | None:
    for ancestor in element.iterancestors():
        if ancestor.get("name"):
            return ancestor
    return None


def _packet_types(definition: object, root: etree._Element, source: str) -> dict[int, PacketType]:
    containers = definition.containers  # type: ignore[attr-defined]
    if ROOT_CONTAINER not in containers:
        raise MissionDefinitionError(f"{source}: no SequenceContainer named {ROOT_CONTAINER!r} (the root container)")
    root_container = containers[ROOT_CONTAINER]
    header = [entry.name for entry in _flatten(root_container.entry_list)]
    if APID_PARAMETER not in header:
        raise MissionDefinitionError(f"{source}: container {ROOT_CONTAINER!r} has no {APID_PARAMETER} entry")
    packet_types: dict[int, PacketType] = {}
    stack = [(root_container, [root_container])]
    while stack:
        container, chain = stack.pop(0)
        for inheritor in container.inheritors:
            child = containers[inheritor]
            stack.append((child, [*chain, child]))
        if container.abstract or container is root_container:
            continue
        apid = _apid_of(chain, source)
        if apid in packet_types:
            raise MissionDefinitionError(
                f"{source}: containers {packet_types[apid].name!r} and {container.name!r} both have APID {apid}: "
                "satlake needs one packet type per APID"
            )
        packet_types[apid] = _packet_type(container.name, apid, chain, root, source)
    if not packet_types:
        raise MissionDefinitionError(
            f"{source}: no concrete packet type (a SequenceContainer without abstract='true' that inherits from "
            f"{ROOT_CONTAINER} with a RestrictionCriteria on {APID_PARAMETER})"
        )
    return dict(sorted(packet_types.items()))


def _flatten(entries: list) -> list:
    flat = []
    for entry in entries:
        flat.extend(_flatten(entry.entry_list) if hasattr(entry, "entry_list") else [entry])
    return flat


def _apid_of(chain: list, source: str) -> int:
    for container in reversed(chain):
        for criterion in container.restriction_criteria:
            if getattr(criterion, "referenced_parameter", None) == APID_PARAMETER and criterion.operator in (
                "==",
                "eq",
            ):
                try:
                    return int(criterion.required_value)
                except ValueError:
                    break
    raise MissionDefinitionError(
        f"{source}: cannot find the APID of container {chain[-1].name!r}: neither it nor a base container has a "
        f"RestrictionCriteria Comparison {APID_PARAMETER} == <integer>"
    )


def _packet_type(name: str, apid: int, chain: list, root: etree._Element, source: str) -> PacketType:
    entries = [entry for container in chain[1:] for entry in _flatten(container.entry_list)]
    parameters = tuple(_parameter_info(entry, root, source) for entry in entries)
    check_columns(source, name, parameters)
    time_parameter = next((p.name for p in parameters if p.kind == "time"), None)
    return PacketType(name, apid, column_name(name), parameters, time_parameter)


def _parameter_info(parameter: object, root: etree._Element, source: str) -> ParameterInfo:
    ptype = parameter.parameter_type  # type: ignore[attr-defined]
    type_name = type(ptype).__name__
    encoding = ptype.encoding
    encoding_name = type(encoding).__name__
    raw_kind = {"IntegerDataEncoding": "int", "FloatDataEncoding": "float"}.get(encoding_name, "binary")
    calibrated = bool(getattr(encoding, "default_calibrator", None) or getattr(encoding, "context_calibrators", None))
    unit = ptype.unit if isinstance(ptype.unit, str) else " ".join(ptype.unit or ())
    enumeration = None
    epoch = None
    if type_name == "AbsoluteTimeParameterType":
        kind, unit, epoch = "time", "s", _epoch_of(ptype, root, source)
    elif type_name == "EnumeratedParameterType":
        if encoding_name != "IntegerDataEncoding":
            raise MissionDefinitionError(
                f"{source}{_line(root, ptype.name)}: EnumeratedParameterType {ptype.name!r}: satlake reads "
                "integer-encoded enumerations only"
            )
        kind, enumeration = "string", dict(ptype.enumeration)
    elif type_name == "BooleanParameterType":
        kind = "bool"
    elif type_name == "StringParameterType":
        kind = "string"
    elif type_name == "BinaryParameterType":
        kind = "binary"
    elif type_name == "IntegerParameterType" and not calibrated and raw_kind == "int":
        kind = "int"
    else:  # float types, calibrated integers, relative times (seconds)
        kind = "float"
    name = parameter.name  # type: ignore[attr-defined]
    return ParameterInfo(name, column_name(name), kind, unit or "", enumeration, calibrated, raw_kind, epoch)


def _epoch_of(ptype: object, root: etree._Element, source: str) -> Epoch:
    text = ptype.epoch  # type: ignore[attr-defined]
    try:
        return resolve_epoch(text).in_units(ptype.unit)  # type: ignore[attr-defined]
    except (UnknownEpochError, ValueError) as exc:
        raise MissionDefinitionError(
            f"{source}{_line(root, ptype.name)}: ReferenceTime of AbsoluteTimeParameterType "  # type: ignore[attr-defined]
            f"{ptype.name!r}: {exc}"  # type: ignore[attr-defined]
        ) from exc


def _line(root: etree._Element, type_name: str) -> str:
    found = root.xpath('//*[local-name()="ParameterTypeSet"]/*[@name=$name]', name=type_name)
    return f" line {found[0].sourceline}" if found and found[0].sourceline else ""
