"""Dagster wiring of the ground segment: ``raw/packets`` and the bronze tables, one partition per mission.

The work lives in ``ingest`` (log to raw, exactly once) and ``bronze`` (decode, sequence, limits); these
functions call it and attach metadata and checks.
"""

from collections.abc import Iterator, Mapping

import dagster as dg

from satlake.ground.bronze import BronzeReport, update_bronze_packets
from satlake.ground.ingest import ingest_packets
from satlake.ground.registry import MissionRecord, RegistryError, get_mission
from satlake.ground.tables import (
    BRONZE_PACKET_REJECTS,
    BRONZE_PACKETS,
    BRONZE_PARAMETERS,
    BRONZE_SEQUENCE_EVENTS,
    RAW_PACKETS,
    packet_type_table,
)
from satlake.resources.event_log import EventLog
from satlake.resources.lakehouse import Lakehouse, TableRef

MISSIONS = dg.DynamicPartitionsDefinition(name="missions")
RAW_KEY = dg.AssetKey(["raw", "packets"])
PACKETS_KEY = dg.AssetKey(["bronze", "packets"])
# Alarms at these severities fail the limits check (a warning: the data is kept either way).
FAILING_SEVERITIES = ("critical", "severe")


def _key(table: TableRef) -> dg.AssetKey:
    return dg.AssetKey([table.zone, table.name])


def _mission(context: dg.AssetExecutionContext, lakehouse: Lakehouse) -> MissionRecord:
    try:
        return get_mission(lakehouse, context.partition_key)
    except RegistryError as error:
        raise dg.Failure(str(error)) from error


@dg.asset(
    key=RAW_KEY,
    partitions_def=MISSIONS,
    group_name="ground",
    kinds={"delta", "kafka"},
    pool="ground_ingest",
    description="Every record the collectors published on a mission's topic (one partition per mission): the packet "
    "bytes exactly as received, the ground station and ground receive time, and what the collectors rejected with "
    "the reason. Appended exactly once: the offsets are committed in the same Delta commit as the rows.",
)
def raw_packets(
    context: dg.AssetExecutionContext,
    event_log: dg.ResourceParam[EventLog],
    lakehouse: dg.ResourceParam[Lakehouse],
) -> dg.MaterializeResult:
    mission = _mission(context, lakehouse)
    report = ingest_packets(event_log, lakehouse, mission, progress=context.log.info)
    return dg.MaterializeResult(
        metadata={
            "records": report.records,
            "batches": report.batches,
            "by_kind": dg.MetadataValue.json(report.by_kind),
            "end_offsets": dg.MetadataValue.json({str(p): o for p, o in report.end_offsets.items()}),
            "topic": mission.topic,
            "uri": lakehouse.uri(RAW_PACKETS),
        }
    )


SHARED_TABLES = {
    BRONZE_PACKETS: "One row per packet of every mission: APID, sequence count and flags, packet time (from the "
    "secondary header where the mission database defines it), ground time, station, and the sequence verdict "
    "(gap, counter repeat, late); duplicates are kept once.",
    BRONZE_PARAMETERS: "One row per parameter per packet, for queries across packets: raw and engineering values "
    "(eng_text for enumerations and strings), unit, and the alarm verdict of the mission database's limits.",
    BRONZE_PACKET_REJECTS: "What cannot be a packet, or a packet that cannot be decoded (unknown APID, shorter than "
    "its definition, bad enumeration value, collector rejects: truncated stream, bad frame CRC, bad header), with "
    "the bytes and the reason.",
    BRONZE_SEQUENCE_EVENTS: "Per APID, gaps in the 14-bit sequence count (with wrap-around, the missing counts), "
    "duplicates, counter repeats and late packets.",
}
PARAMETERS_KEY = _key(BRONZE_PARAMETERS)
REJECTS_KEY = _key(BRONZE_PACKET_REJECTS)
SEQUENCE_KEY = _key(BRONZE_SEQUENCE_EVENTS)
CHECKS = [
    dg.AssetCheckSpec("every_record_accounted", asset=PACKETS_KEY,
                      description="raw records read = packets (duplicates included) + rejects"),
    dg.AssetCheckSpec("known_apids", asset=PACKETS_KEY,
                      description="every APID is in the mission database (unknown ones are kept and listed)"),
    dg.AssetCheckSpec("sequence_continuity", asset=SEQUENCE_KEY,
                      description="no gap in any APID's sequence count (the gaps are rows of this table)"),
    dg.AssetCheckSpec("packets_decoded", asset=REJECTS_KEY,
                      description="nothing rejected (the rejects, by reason, are rows of this table)"),
    dg.AssetCheckSpec("parameter_limits", asset=PARAMETERS_KEY,
                      description=f"samples out of limits by severity; fails on {' or '.join(FAILING_SEVERITIES)}"),
]  # fmt: skip


def build_bronze_packets(missions: Mapping[str, MissionRecord]) -> dg.AssetsDefinition:
    """The bronze multi-asset: the shared tables, plus one table per packet type of the missions registered
    when the definitions were loaded (a mission added later gets its own assets on the next reload; its tables
    are written meanwhile all the same)."""
    specs = [
        dg.AssetSpec(_key(table), deps=[RAW_KEY], group_name="ground", kinds={"delta"}, description=text)
        for table, text in SHARED_TABLES.items()
    ]
    for mission in sorted(missions.values(), key=lambda m: m.name):
        for apid, packet_type in sorted(_packet_types(mission).items()):
            table = packet_type_table(mission.name, packet_type[1])
            description = (
                f"Mission {mission.name}, packet type {packet_type[0]} (APID {apid}): one row per packet, a column "
                "per parameter of the mission database (engineering value, and <name>_raw)."
            )
            specs.append(
                dg.AssetSpec(
                    _key(table),
                    deps=[RAW_KEY],
                    group_name="ground",
                    kinds={"delta"},
                    skippable=True,
                    description=description,
                )
            )

    @dg.multi_asset(
        name="bronze_packets",
        specs=specs,
        partitions_def=MISSIONS,
        check_specs=CHECKS,
        pool="ground_bronze",
        can_subset=False,
    )
    def bronze_packets(
        context: dg.AssetExecutionContext, lakehouse: dg.ResourceParam[Lakehouse]
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        mission = _mission(context, lakehouse)
        report = update_bronze_packets(lakehouse, mission, say=context.log.info)
        context.log.info(
            f"{mission.name} v{mission.version}: {report.raw_rows} raw records -> {report.packets} packets, "
            f"{report.duplicates} duplicates, {report.rejects} rejects {report.reject_reasons}, sequence "
            f"{report.events}, alarms {report.alarm_samples}"
        )
        common = {"mission_version": mission.version, "mission_checksum": mission.checksum}
        yield dg.MaterializeResult(asset_key=PACKETS_KEY, metadata={
            "dagster/row_count": report.packets, "raw_records": report.raw_rows, "duplicates": report.duplicates,
            "sequence_events": dg.MetadataValue.json(report.events), **common})  # fmt: skip
        yield dg.MaterializeResult(asset_key=_key(BRONZE_PARAMETERS), metadata={
            "dagster/row_count": report.parameters, "alarm_samples": dg.MetadataValue.json(report.alarm_samples),
            **common})  # fmt: skip
        yield dg.MaterializeResult(
            asset_key=_key(BRONZE_PACKET_REJECTS),
            metadata={
                "dagster/row_count": report.rejects,
                "reasons": dg.MetadataValue.json(report.reject_reasons),
                **common,
            },
        )
        yield dg.MaterializeResult(asset_key=_key(BRONZE_SEQUENCE_EVENTS), metadata={
            "dagster/row_count": sum(report.events.values()), **common})  # fmt: skip
        for name, rows in report.tables.items():
            key = dg.AssetKey(["bronze", name])
            if key in context.selected_asset_keys:
                yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": rows, **common})
        yield from bronze_checks(report)

    return bronze_packets


def _packet_types(mission: MissionRecord) -> dict[int, tuple[str, str]]:
    """(name, table) of each packet type of the mission's database, by APID ({} if it cannot be read)."""
    try:
        return {apid: (t.name, t.table) for apid, t in mission.database.packet_types.items()}
    except Exception:  # a definition that no longer parses: its shared tables still work; bronze says why
        return {}


CHECKED_ASSET = {spec.name: spec.asset_key for spec in CHECKS}


def _check(name: str, passed: bool, description: str, metadata: Mapping[str, object]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=CHECKED_ASSET[name],
        check_name=name,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR if name == "every_record_accounted" else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={k: dg.MetadataValue.json(v) if isinstance(v, dict | list) else v for k, v in metadata.items()},
    )


def bronze_checks(report: BronzeReport) -> Iterator[dg.AssetCheckResult]:
    yield _check(
        "every_record_accounted", report.unaccounted == 0,
        f"{report.raw_rows} raw records: {report.packets} packets, {report.duplicates} duplicates kept once, "
        f"{report.rejected_only} rejected without a packet row"
        + (f"; {report.unaccounted} records gave no row at all" if report.unaccounted else ""),
        {"raw_records": report.raw_rows, "packets": report.packets, "unaccounted": report.unaccounted},
    )  # fmt: skip
    gaps = report.events.get("gap", 0)
    yield _check(
        "sequence_continuity", gaps == 0,
        f"{gaps} gaps, {report.missing_packets} packets missing; {report.events}" if gaps
        else f"no gap; {report.events or 'every count followed the last'}",
        {"events": report.events, "missing_packets": report.missing_packets},
    )  # fmt: skip
    unknown = {str(apid): count for apid, count in report.unknown_apids.items()}
    yield _check(
        "known_apids", not unknown,
        f"packets of APIDs the mission database does not define (kept, not decoded): {unknown}" if unknown
        else "every APID is defined",
        {"unknown_apids": unknown},
    )  # fmt: skip
    yield _check(
        "packets_decoded", report.rejects == 0,
        f"{report.rejects} rejects: {report.reject_reasons}" if report.rejects else "every record decoded",
        {"reasons": report.reject_reasons},
    )  # fmt: skip
    failing = {s: n for s, n in report.alarm_samples.items() if s in FAILING_SEVERITIES}
    yield _check(
        "parameter_limits",
        not failing,
        f"samples out of limits: {report.alarm_samples or 'none'}",
        {"samples_by_severity": report.alarm_samples},
    )
