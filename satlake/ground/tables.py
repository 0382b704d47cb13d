"""The ground segment's Delta tables and their columns (the decoder's tables are in ``decode``)."""

from __future__ import annotations

import pyarrow as pa

from satlake.resources.lakehouse import TableRef

RAW_PACKETS = TableRef("raw", "packets")
BRONZE_PACKETS = TableRef("bronze", "packets")
BRONZE_PARAMETERS = TableRef("bronze", "parameters")
BRONZE_PACKET_REJECTS = TableRef("bronze", "packet_rejects")
BRONZE_SEQUENCE_EVENTS = TableRef("bronze", "packet_sequence_events")
GOLD_ALARMS = TableRef("gold", "alarms")

_TS = pa.timestamp("us", tz="UTC")

# Record kinds in raw/packets: what a collector published (see envelope), or a record that is no envelope at all.
PACKET, REJECT, NOT_AN_ENVELOPE = "packet", "reject", "not_an_envelope"

RAW_PACKETS_SCHEMA = pa.schema(
    [
        pa.field("mission", pa.string(), nullable=False),
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("broker_timestamp", _TS, nullable=False),
        pa.field("kind", pa.string(), nullable=False, metadata={"doc": "packet | reject | not_an_envelope"}),
        pa.field("station", pa.string(), metadata={"doc": "the ground station that delivered it"}),
        pa.field("ground_time", _TS, metadata={"doc": "when the collector received it"}),
        pa.field("apid", pa.int32(), metadata={"doc": "from the primary header, when there is one"}),
        pa.field("reason", pa.string(), metadata={"doc": "why the collector rejected the bytes (rejects)"}),
        pa.field("packet", pa.binary(), nullable=False, metadata={"doc": "the bytes exactly as received"}),
        pa.field("receive_date", pa.date32(), nullable=False),
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("received_at", _TS, nullable=False, metadata={"doc": "when raw ingestion committed it"}),
    ]
)

SEQUENCE_EVENTS_SCHEMA = pa.schema(
    [
        pa.field("mission", pa.string(), nullable=False),
        pa.field("apid", pa.int32(), nullable=False),
        pa.field("packet_type", pa.string()),
        pa.field("kind", pa.string(), nullable=False,
                 metadata={"doc": "gap | duplicate | counter_repeat | out_of_order"}),
        pa.field("previous_count", pa.int32()),
        pa.field("sequence_count", pa.int32(), nullable=False),
        pa.field("missing", pa.int32(), nullable=False, metadata={"doc": "packets missing before (gaps)"}),
        pa.field("missing_counts", pa.string(), metadata={"doc": "e.g. 16383..1"}),
        pa.field("packet_time", _TS),
        pa.field("ground_time", _TS),
        pa.field("station", pa.string()),
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("event_date", pa.date32(), nullable=False),
    ]
)  # fmt: skip

# Columns bronze.packets adds to the decoder's packet rows: the verdict on the sequence count.
SEQUENCE_FIELDS = [
    pa.field("sequence_status", pa.string(), nullable=False,
             metadata={"doc": "first | ok | gap | counter_repeat | out_of_order (duplicates are kept once)"}),
    pa.field("missing_before", pa.int32(), nullable=False),
]  # fmt: skip


def packet_type_table(mission: str, table: str) -> TableRef:
    """The per-packet-type table ``bronze/<mission>_<packet type>``."""
    return TableRef("bronze", f"{mission}_{table}")
