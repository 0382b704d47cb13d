"""ccsdspy's packet layout CSVs as a mission definition (format "ccsdspy-csv"): one CSV per packet type, the
APID in the file name, decoded by ccsdspy. For missions that have no XTCE; satlake's optional columns add units,
calibration, enumerations and the secondary header time that XTCE would carry.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from satlake.ground.epochs import UnknownEpochError, resolve_epoch
from satlake.ground.xtce import (
    MissionDatabase,
    MissionDefinitionError,
    PacketType,
    ParameterInfo,
    check_columns,
    column_name,
)


@dataclass(frozen=True)
class CsvField:
    """One row of a layout CSV; ``coefficients`` are the calibration polynomial's, lowest power first."""

    name: str
    data_type: str
    bit_length: int
    bit_offset: int | None
    coefficients: tuple[float, ...] = ()
    enumeration: Mapping[int, str] | None = None


@dataclass(frozen=True)
class CsvLayout:
    """One packet type in ccsdspy's CSV layout, one file per APID (the file name carries it: ``hk_apid100.csv``).

    Columns: ``name, data_type, bit_length`` and optionally ``bit_offset`` (ccsdspy's own: the layout starts after
    the 6-byte primary header, offsets count from the packet start), plus satlake's optional ``unit``,
    ``coefficients`` (calibration polynomial, lowest power first: ``-0.1 0.002``), ``enumeration``
    (``0=OFF;1=ON``) and ``epoch`` (marks the time of the secondary header: TAI, GPS, UNIX, J2000 or an ISO date;
    its ``coefficients`` scale the count to seconds). Fields of data type ``fill`` are skipped. Without
    coefficients the engineering value is the raw value. ccsdspy ignores the extra columns.
    """

    apid: int
    name: str
    fields: tuple[CsvField, ...]
    length: int  # bytes, primary header included

    def ccsdspy_packet(self) -> object:
        """The ccsdspy ``FixedLength`` packet of this layout."""
        ccsdspy = import_ccsdspy()
        return ccsdspy.FixedLength(
            [ccsdspy.PacketField(f.name, f.data_type, f.bit_length, bit_offset=f.bit_offset) for f in self.fields],
            apid=self.apid,
            name=self.name,
        )


def import_ccsdspy() -> object:
    """ccsdspy, imported on first use: its import needs a writable config directory (falls back to a temporary
    one when the user's is not writable) and logs at DEBUG level, so it stays out of module import time."""
    import logging
    import os
    import tempfile

    quiet = logging.root.manager.disable
    logging.disable(logging.INFO)  # its import announces itself
    try:
        import ccsdspy
    except RuntimeError:  # "Could not write to ccsdspy_CONFIGDIR"
        os.environ["ccsdspy_CONFIGDIR"] = tempfile.mkdtemp(prefix="ccsdspy-")  # noqa: SIM112 (ccsdspy's spelling)
        import ccsdspy
    finally:
        logging.disable(quiet)
    logging.getLogger("ccsdspy").setLevel(logging.ERROR)  # it logs sequence-count remarks on every load
    return ccsdspy


_REQUIRED = ("name", "data_type", "bit_length")
_DATA_TYPES = ("uint", "int", "float", "str", "fill")


def load_csv_layouts(files: Mapping[str, bytes], source: str, checksum: str) -> MissionDatabase:
    """A mission database from layout CSVs (file name -> bytes); ``source`` names it, ``checksum`` is its digest."""
    if not files:
        raise MissionDefinitionError(f"{source}: no layout CSV (*.csv) found")
    layouts: dict[int, CsvLayout] = {}
    packet_types: dict[int, PacketType] = {}
    for file_name, data in files.items():
        layout, packet_type = _csv_layout(file_name, data)
        if layout.apid in layouts:
            raise MissionDefinitionError(f"{source}: two layouts for APID {layout.apid} ({file_name})")
        try:
            layout.ccsdspy_packet()
        except (TypeError, ValueError) as exc:
            raise MissionDefinitionError(f"{file_name}: ccsdspy refuses the layout: {exc}") from exc
        layouts[layout.apid], packet_types[layout.apid] = layout, packet_type
    return MissionDatabase(source, "ccsdspy-csv", checksum, dict(sorted(packet_types.items())), {}, layouts)


def _csv_layout(file_name: str, data: bytes) -> tuple[CsvLayout, PacketType]:
    found = re.search(r"apid[_-]?(\d+)", file_name, re.IGNORECASE)
    if not found or int(found.group(1)) > 2046:
        raise MissionDefinitionError(f"{file_name}: the file name must carry the APID (0-2046), e.g. hk_apid100.csv")
    apid = int(found.group(1))
    name = re.sub(r"[_-]?apid[_-]?\d+", "", Path(file_name).stem, flags=re.IGNORECASE).strip("_-") or f"APID{apid}"
    try:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")), skipinitialspace=True)
        header = [column.strip() for column in reader.fieldnames or ()]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MissionDefinitionError(f"{file_name}: not a UTF-8 CSV: {exc}") from exc
    if missing := [column for column in _REQUIRED if column not in header]:
        raise MissionDefinitionError(f"{file_name}: missing column(s) {', '.join(missing)} (header: {header})")
    fields: list[CsvField] = []
    parameters: list[ParameterInfo] = []
    for row in reader:
        cells = {key.strip(): (value or "").strip() for key, value in row.items() if key}
        csv_field, info = _csv_field(file_name, reader.line_num, cells)
        fields.append(csv_field)
        if info is not None:
            parameters.append(info)
    if not fields:
        raise MissionDefinitionError(f"{file_name}: the layout has no fields")
    if any(f.bit_offset is None for f in fields) and any(f.bit_offset is not None for f in fields):
        raise MissionDefinitionError(f"{file_name}: give bit_offset for every field or for none")
    position = 48
    for f in fields:
        start = position if f.bit_offset is None else f.bit_offset
        spanned = (start + f.bit_length - 1) // 8 - start // 8 + 1
        if (f.data_type in ("uint", "int") and spanned > 8) or (f.data_type in ("float", "str") and start % 8):
            raise MissionDefinitionError(
                f"{file_name}: field {f.name!r} at bit {start} is not byte aligned or spans {spanned} bytes: "
                "ccsdspy reads floats and strings on byte boundaries and integers within 8 bytes"
            )
        position = max(position, start + f.bit_length)
    bits = position
    if bits % 8:
        raise MissionDefinitionError(f"{file_name}: the fields add up to {bits} bits, not whole bytes")
    times = [p.name for p in parameters if p.kind == "time"]
    if len(times) > 1:
        raise MissionDefinitionError(f"{file_name}: more than one field has an epoch ({', '.join(times)})")
    check_columns(file_name, name, tuple(parameters))
    packet_type = PacketType(name, apid, column_name(name), tuple(parameters), times[0] if times else None)
    return CsvLayout(apid, name, tuple(fields), bits // 8), packet_type


def _csv_field(file_name: str, line: int, cells: Mapping[str, str]) -> tuple[CsvField, ParameterInfo | None]:
    where = f"{file_name} line {line}"
    name, data_type = cells.get("name", ""), cells.get("data_type", "")
    if not name:
        raise MissionDefinitionError(f"{where}: a field without a name")
    if data_type not in _DATA_TYPES:
        raise MissionDefinitionError(f"{where}: field {name!r} has data_type {data_type!r} (expected {_DATA_TYPES})")
    try:
        bit_length = int(cells["bit_length"])
        bit_offset = int(cells["bit_offset"]) if cells.get("bit_offset") else None
        coefficients = tuple(float(c) for c in re.split(r"[\s;]+", cells.get("coefficients", "")) if c)
        enumeration = _csv_enumeration(cells.get("enumeration", ""))
    except ValueError as exc:
        raise MissionDefinitionError(f"{where}: field {name!r}: {exc}") from exc
    if (
        bit_length <= 0
        or (data_type == "float" and bit_length not in (32, 64))
        or (data_type in ("uint", "int") and bit_length > 64)
    ):
        raise MissionDefinitionError(f"{where}: field {name!r} cannot be a {data_type} of {bit_length} bits")
    if ((coefficients or cells.get("epoch")) and data_type not in ("uint", "int", "float")) or (
        enumeration and data_type not in ("uint", "int")
    ):
        raise MissionDefinitionError(
            f"{where}: field {name!r}: coefficients and epochs go on numbers, enumerations on integers"
        )
    csv_field = CsvField(name, data_type, bit_length, bit_offset, coefficients, enumeration)
    if data_type == "fill":
        return csv_field, None
    raw_kind = {"uint": "int", "int": "int", "float": "float"}.get(data_type, "binary")
    epoch = None
    if cells.get("epoch"):
        try:
            epoch = resolve_epoch(cells["epoch"])
        except UnknownEpochError as exc:
            raise MissionDefinitionError(f"{where}: field {name!r}: {exc}") from exc
        kind = "time"
    elif enumeration or data_type == "str":
        kind = "string"
    else:
        kind = "float" if coefficients or data_type == "float" else "int"
    unit = "s" if kind == "time" else cells.get("unit", "")
    info = ParameterInfo(name, column_name(name), kind, unit, enumeration, bool(coefficients), raw_kind, epoch)
    return csv_field, info


def _csv_enumeration(text: str) -> dict[int, str] | None:
    if not text:
        return None
    pairs = [item.split("=", 1) for item in text.split(";") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"enumeration {text!r} is not value=LABEL;value=LABEL")
    return {int(value): label.strip() for value, label in pairs}
