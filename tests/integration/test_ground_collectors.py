"""Ground stations' packets through the stack's ingress: HAProxy in front of the two `satlake collect` processes
that `satlake stack up` starts, over raw TCP streams (several connections at once) and HTTP uploads. Every packet
reaches the mission's topic exactly once, and both collectors serve both kinds of traffic."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from satlake.ground import registry
from satlake.ground.envelope import Envelope, Kind, unwrap
from satlake.ground.simulate import simulate_packets
from satlake.resources import build_resources
from satlake.resources.kafka_event_log import KafkaEventLog
from satlake.settings import Settings
from satlake.stack.config import COLLECTORS, StackConfig

pytestmark = pytest.mark.integration

MISSION_FILE = Path(registry.__file__).with_name("missions") / "demosat.xml"
TCP_CONNECTIONS, PACKETS_PER_CONNECTION = 6, 40
HTTP_UPLOADS, PACKETS_PER_UPLOAD = 8, 25
DELIVERY_TIMEOUT_S = 90.0
NOT_SERVING = (0, 401, 404, 503)  # no answer yet, or the collector has not read the new mission and station yet


@dataclass(frozen=True)
class Delivery:
    """What the stations sent through HAProxy, and what the collectors and HAProxy reported around it."""

    mission: str
    station: str
    topic: str
    tcp_packets: list[bytes]
    http_packets: list[bytes]
    tcp_answers: list[str]  # each connection's answer: "OK <mission>", then "DONE {...}" once all is published
    http_answers: list[dict[str, object]]
    published: dict[str, dict[str, float]]  # packets each collector published, by transport (its /metrics)
    haproxy_log: str  # the lines HAProxy logged for these connections and uploads


def collector_url(config: StackConfig, collector: str, path: str) -> str:
    """A collector's own HTTP address (behind HAProxy)."""
    return f"http://{config.host(collector)}:{config.ports(collector)['http']}{path}"


def published_packets(config: StackConfig, mission: str) -> dict[str, dict[str, float]]:
    """``satlake_collector_packets_total`` of ``mission`` by transport, for each collector."""
    published: dict[str, dict[str, float]] = {}
    for collector in COLLECTORS:
        with urllib.request.urlopen(collector_url(config, collector, "/metrics"), timeout=10) as response:
            text = response.read().decode()
        published[collector] = {}
        for labels, value in re.findall(r"^satlake_collector_packets_total\{([^}]*)\}\s+(\S+)", text, re.MULTILINE):
            label = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            if label.get("mission") == mission:
                published[collector][label["transport"]] = float(value)
    return published


def upload(url: str, station: str, token: str, body: bytes) -> tuple[int, dict[str, object]]:
    """POST packets as a station does; waits out 429 (the collector's broker is behind)."""
    headers = {"Authorization": f"Bearer {token}", "X-Satlake-Station": station}
    headers["Content-Type"] = "application/octet-stream"
    for _ in range(20):
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            if error.code != 429:
                return error.code, {"error": error.read().decode(errors="replace")}
            time.sleep(float(error.headers.get("Retry-After", "1")))
    raise AssertionError(f"{url} kept answering 429")


def wait_until_collectors_serve(config: StackConfig, mission: str, station: str, token: str) -> None:
    """Each collector reads missions and stations from the lake (again when asked for one it does not know):
    wait until both take an empty upload of the new mission from the new station."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    for collector in COLLECTORS:
        url = collector_url(config, collector, f"/v1/missions/{mission}/packets")
        status, answer = 0, {}
        while time.monotonic() < deadline:
            try:
                status, answer = upload(url, station, token, b"")
            except OSError as error:
                status, answer = 0, {"error": str(error)}
            if status not in NOT_SERVING:
                break
            time.sleep(1.0)
        assert status not in NOT_SERVING, f"{collector} does not take {mission} from {station}: {status} {answer}"


def stream(address: tuple[str, int], auth: bytes, packets: list[bytes], opened: threading.Barrier) -> str:
    """One station's connection: the AUTH line, its packets, its half-close; returns what the collector answered
    (it publishes the rest, answers DONE and closes)."""
    received = bytearray()
    try:
        with socket.create_connection(address, timeout=60) as connection:
            opened.wait(timeout=30)  # every connection is open before any sends: least connections spreads them
            connection.sendall(auth + b"".join(packets))
            connection.shutdown(socket.SHUT_WR)
            while chunk := connection.recv(4096):
                received += chunk
    except (OSError, threading.BrokenBarrierError) as error:
        received += f"\nfailed: {type(error).__name__}: {error}".encode()
    return received.decode(errors="replace")


def read_envelopes(bootstrap: str, topic: str) -> list[Envelope]:
    """Every record of ``topic``, unwrapped."""
    envelopes: list[Envelope] = []
    with KafkaEventLog(bootstrap, client_id="satlake-it-ground") as event_log:
        offsets: dict[int, int] = {}
        while batch := event_log.read_columns(topic, offsets, max_records=10_000, timeout_s=5.0):
            envelopes += [unwrap(value) for value in batch.value.to_pylist()]
            for partition, offset in zip(batch.partition.tolist(), batch.offset.tolist(), strict=True):
                offsets[partition] = max(offsets.get(partition, 0), offset + 1)
    return envelopes


@pytest.fixture(scope="module")
def delivery(stack: Settings) -> Delivery:
    config = StackConfig.from_settings(stack)
    lakehouse = build_resources(stack).lakehouse
    run = uuid.uuid4().hex[:10]
    mission, station = f"it_{run}", f"it-gs-{run}"
    record, _ = registry.add_mission(lakehouse, stack, mission, MISSION_FILE)
    _, token = registry.add_station(lakehouse, station, (mission,))
    wait_until_collectors_serve(config, mission, station, token)

    split = TCP_CONNECTIONS * PACKETS_PER_CONNECTION
    total = split + HTTP_UPLOADS * PACKETS_PER_UPLOAD
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    packets = simulate_packets(record.database, start=start, seconds=600, alarm=False)[:total]
    assert len(packets) == len(set(packets)) == total  # every packet tells itself apart (APID, sequence, time)
    tcp_packets, http_packets = packets[:split], packets[split:]

    log_file = config.log_file("haproxy")
    log_start = log_file.stat().st_size
    before = published_packets(config, mission)
    host = config.collector_host
    auth = f"AUTH {station} {token} {mission}\n".encode()
    chunks = [tcp_packets[n : n + PACKETS_PER_CONNECTION] for n in range(0, split, PACKETS_PER_CONNECTION)]
    opened = threading.Barrier(TCP_CONNECTIONS)
    with ThreadPoolExecutor(TCP_CONNECTIONS) as pool:
        streams = [pool.submit(stream, (host, config.collector_tcp_port), auth, chunk, opened) for chunk in chunks]
        url = f"http://{host}:{config.collector_http_port}/v1/missions/{mission}/packets"
        http_answers = []
        for n in range(0, len(http_packets), PACKETS_PER_UPLOAD):
            status, answer = upload(url, station, token, b"".join(http_packets[n : n + PACKETS_PER_UPLOAD]))
            assert status == 200, answer
            http_answers.append(answer)
        tcp_answers = [future.result(timeout=DELIVERY_TIMEOUT_S) for future in streams]

    time.sleep(2.0)  # let HAProxy write the log lines of the connections just closed
    with log_file.open("rb") as log:
        log.seek(log_start)
        haproxy_log = log.read().decode(errors="replace")
    after = published_packets(config, mission)
    return Delivery(
        mission=mission,
        station=station,
        topic=record.topic,
        tcp_packets=tcp_packets,
        http_packets=http_packets,
        tcp_answers=tcp_answers,
        http_answers=http_answers,
        published={
            collector: {
                transport: after[collector].get(transport, 0.0) - before[collector].get(transport, 0.0)
                for transport in ("tcp", "http")
            }
            for collector in COLLECTORS
        },
        haproxy_log=haproxy_log,
    )


def test_every_packet_is_in_the_missions_topic_exactly_once(stack: Settings, delivery: Delivery) -> None:
    # Each connection and upload was answered only after the log had acknowledged its packets.
    assert [answer.get("accepted") for answer in delivery.http_answers] == [PACKETS_PER_UPLOAD] * HTTP_UPLOADS
    assert len(delivery.tcp_answers) == TCP_CONNECTIONS
    for answer in delivery.tcp_answers:
        lines = answer.splitlines()
        assert lines[0] == f"OK {delivery.mission}" and lines[-1].startswith("DONE "), answer
        assert json.loads(lines[-1].removeprefix("DONE "))["accepted"] == PACKETS_PER_CONNECTION, answer
    sent = delivery.tcp_packets + delivery.http_packets
    with KafkaEventLog(stack.kafka_bootstrap, client_id="satlake-it-ground") as event_log:
        in_topic = sum(event_log.end_offsets(delivery.topic).values())
    assert in_topic == len(sent), f"{in_topic} records in {delivery.topic} for {len(sent)} packets sent"
    envelopes = read_envelopes(stack.kafka_bootstrap, delivery.topic)
    assert {(envelope.kind, envelope.station) for envelope in envelopes} == {(Kind.PACKET, delivery.station)}
    assert Counter(envelope.payload for envelope in envelopes) == Counter(sent)


def test_both_collectors_served_streams_and_uploads(delivery: Delivery) -> None:
    # HAProxy's log names the collector of every TCP session and HTTP request.
    for backend in ("collectors_tcp", "collectors_http"):
        served = Counter(re.findall(rf"\b{backend}/(collector\d)\b", delivery.haproxy_log))
        assert set(served) == set(COLLECTORS), f"{backend}: {dict(served)}"
    # The collectors' own counts: each published packets of both transports, together every packet once.
    for transport, sent in (("tcp", delivery.tcp_packets), ("http", delivery.http_packets)):
        published = {collector: delivery.published[collector][transport] for collector in COLLECTORS}
        assert all(published.values()) and sum(published.values()) == len(sent), f"{transport}: {published}"


def test_the_pipeline_counts_every_packet_in_trino_exactly(stack: Settings, delivery: Delivery) -> None:
    """raw/packets and bronze for the mission's partition, on Kafka, MinIO and Trino; then Trino counts, as the
    ops role: every packet sent through HAProxy once in raw, once in bronze, once in its packet type's table."""
    import dagster as dg

    from satlake.definitions import build_definitions
    from satlake.ground.tables import packet_type_table
    from satlake.resources.trino import TrinoLake
    from satlake.stack.access import ADMIN, OPS

    sent = delivery.tcp_packets + delivery.http_packets
    defs = build_definitions(stack)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("missions", [delivery.mission])
        result = defs.resolve_job_def("ground_packets_job").execute_in_process(
            partition_key=delivery.mission, instance=instance
        )
    assert result.success
    trino = TrinoLake(stack.trino_host, stack.trino_port, user=ADMIN)
    try:
        where = f"WHERE mission = '{delivery.mission}'"
        counts = {
            table: trino.query(f"SELECT count(*) FROM lake.{table} {where}", user=OPS)[1][0][0]
            for table in ("raw.packets", "bronze.packets")
        }
        assert counts == {"raw.packets": len(sent), "bronze.packets": len(sent)}
        by_type = trino.query(f"SELECT packet_type, count(*) FROM lake.bronze.packets {where} GROUP BY 1", user=OPS)
        hk = packet_type_table(delivery.mission, "hk")
        in_hk_table = trino.query(f"SELECT count(*) FROM lake.{hk.zone}.{hk.name}", user=OPS)[1][0][0]
        assert in_hk_table == dict(by_type[1])["HK"] > 0
        stations = trino.query(f"SELECT DISTINCT station FROM lake.bronze.packets {where}", user=OPS)[1]
        assert stations == [(delivery.station,)]
        duplicates = trino.query(
            f"SELECT count(*) FROM lake.bronze.packet_sequence_events {where} AND kind = 'duplicate'", user=OPS
        )[1][0][0]
        assert duplicates == 0  # six connections and eight uploads at once may reorder an APID, never repeat it
    finally:
        trino.close()
