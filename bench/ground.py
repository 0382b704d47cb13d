"""Ground segment: packet decode throughput of satlake's ``decode_batch`` against space_packet_parser alone and
ccsdspy on the same simulated DEMOSAT packets, and collector throughput (raw TCP with one and two ``satlake
collect`` processes, HTTP POSTs with one) into the embedded event log, every packet counted back from the log.

Decode: each system runs in a fresh spawned process on the same packets (a file of them back to back), untimed
set-up first (loading the definition, the Arrow batch satlake's bronze step hands the decoder); the timed call
is the decode alone, the peak RSS increase the process's VmHWM over the call (reset through
``/proc/self/clear_refs`` just before it) minus its RSS then. Decoded counts per APID and the sum of one
calibrated parameter must agree across systems.

Collectors: ``satlake collect`` (its command function, in its own process, free ports) on a temporary root with
the DEMOSAT mission and one station registered; N concurrent senders (threads with raw sockets: the AUTH line,
the packets, then waiting for the collector's ``DONE`` answer) share the packets. The time runs from the first
connection to the last ``DONE`` (every packet acknowledged by the log), and the log is read back afterwards:
packets, bytes and an order-free checksum of the payloads must equal what was sent. With ``--kafka host:port``
the TCP runs are repeated with collectors publishing to that broker (a throwaway topic, deleted afterwards);
without a broker there, that half is skipped with a note.

Run: ``python -m bench.ground`` (full size, about 1.5 minutes on 2 quiet cores) or ``python -m bench.ground --quick``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import SIZES, comparison, print_table, run_isolated, write_result

REPO = Path(__file__).resolve().parents[1]
XTCE = REPO / "satlake" / "ground" / "missions" / "demosat.xml"
LAYOUTS = REPO / "tests" / "fixtures" / "ground" / "demosat_layouts"
MISSION = "demosat"
STATION = "bench-gs"
TOKEN = "bench-token-" + "x" * 20
START = datetime(2026, 3, 1, tzinfo=UTC)
GROUND_TIME = datetime(2026, 3, 2, tzinfo=UTC)
PACKETS_PER_SIM_SECOND = 1.7  # DEMOSAT: APID 100 every 1 s, 101 every 2 s, 102 every 5 s
CHECK_PARAMETER = ("BATT_V", 100)  # a calibrated parameter every system decodes: its sum must agree
SEND_CHUNK = 1024 * 1024
WARM_UP_PACKETS = 200
READY_TIMEOUT_S = 60.0
MIB = 1024 * 1024

DEFAULTS: dict[str, dict[str, Any]] = {
    "full": {"decode_packets": 100_000, "collector_packets": 500_000, "senders": 4, "repeat": 2},
    "small": {"decode_packets": 2_000, "collector_packets": 4_000, "senders": 2, "repeat": 1},
}
POST_BYTES = (64 * 1024, 1024 * 1024)  # 1 MiB: `satlake produce packets --via http://` default

SATLAKE = "satlake decode_batch (XTCE)"
SATLAKE_CSV = "satlake decode_batch (ccsdspy-csv layouts)"
SPP = "space_packet_parser 6 parse_bytes"
CCSDSPY = "ccsdspy 2 FixedLength.load"
DECODERS = (SATLAKE, SPP, CCSDSPY, SATLAKE_CSV)
WHAT = {
    SATLAKE: "bronze rows: packets, per-type tables, parameters long table with alarm verdicts, rejects; "
    "onboard time to UTC",
    SATLAKE_CSV: "the same rows from the layout CSVs (ccsdspy underneath; no alarms: the CSVs define none)",
    SPP: "one dict of parsed items per packet over ccsds_generator (raw + calibrated, enum labels)",
    CCSDSPY: "split_by_apid, then one numpy array per field and APID, plus poly and enum converted fields",
}


# -- packets --------------------------------------------------------------------------------------------------


def simulate(count: int) -> list[bytes]:
    """``count`` DEMOSAT packets of all three types, in time order (one alarm excursion included)."""
    from satlake.ground.simulate import simulate_packets
    from satlake.ground.xtce import load_mission_database

    db = load_mission_database(XTCE)
    seconds = int(count / PACKETS_PER_SIM_SECOND) + 20
    packets = simulate_packets(db, start=START, seconds=seconds, seed=7)
    if len(packets) < count:
        raise RuntimeError(f"simulated {len(packets)} packets, wanted {count}")
    return packets[:count]


def split_stream(stream: bytes) -> list[bytes]:
    """The packets of a stream of well-formed packets back to back (by their length fields)."""
    packets, position = [], 0
    while position < len(stream):
        end = position + int.from_bytes(stream[position + 4 : position + 6], "big") + 7
        packets.append(stream[position:end])
        position = end
    return packets


# -- decode: one system per spawned process --------------------------------------------------------------------


def _status_kib(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{name} not in /proc/self/status")


def _prepare_satlake(stream: bytes, definition: Path) -> Callable[[], Any]:
    import pyarrow as pa

    from satlake.ground.decode import decode_batch
    from satlake.ground.xtce import load_mission_database

    db = load_mission_database(definition)
    packets = split_stream(stream)
    n = len(packets)
    batch = pa.table(
        {
            "topic": pa.array([f"satlake.packets.{MISSION}"] * n, pa.string()),
            "partition": pa.array([0] * n, pa.int32()),
            "offset": pa.array(range(n), pa.int64()),
            "station": pa.array([STATION] * n, pa.string()),
            "ground_time": pa.array([GROUND_TIME] * n, pa.timestamp("us", tz="UTC")),
            "packet": pa.array(packets, pa.binary()),
        }
    )
    return lambda: decode_batch(db, MISSION, batch)


def _prepare_spp(stream: bytes) -> Callable[[], Any]:
    import space_packet_parser as spp

    definition = spp.load_xtce(XTCE)
    return lambda: [definition.parse_bytes(packet) for packet in spp.ccsds_generator(io.BytesIO(stream))]


def _prepare_ccsdspy(stream: bytes) -> Callable[[], Any]:
    """Plain ccsdspy: ``FixedLength.from_file`` per layout CSV, with the converted fields its satlake columns
    imply (calibration polynomials, enumerations; the onboard time as seconds from its epoch)."""
    from satlake.ground.layouts import import_ccsdspy
    from satlake.ground.xtce import load_mission_database

    import_ccsdspy()  # quiet: a plain import logs a line at INFO level
    from ccsdspy import FixedLength
    from ccsdspy.converters import EnumConverter, PolyConverter
    from ccsdspy.utils import split_by_apid

    layouts = load_mission_database(LAYOUTS).definition
    definitions = {}
    for path in sorted(LAYOUTS.glob("*.csv")):
        apid = int(path.stem.rsplit("apid", 1)[1])
        packet = FixedLength.from_file(str(path))
        for field in layouts[apid].fields:  # type: ignore[index]
            if field.coefficients:
                packet.add_converted_field(field.name, f"{field.name}_eng", PolyConverter(field.coefficients[::-1]))
            elif field.enumeration:
                packet.add_converted_field(field.name, f"{field.name}_eng", EnumConverter(dict(field.enumeration)))
        definitions[apid] = packet

    def work() -> dict[int, dict[str, Any]]:
        streams = split_by_apid(io.BytesIO(stream))
        return {apid: definitions[apid].load(data, include_primary_header=True) for apid, data in streams.items()}

    return work


def _fingerprint(system: str, result: Any) -> dict[str, Any]:
    """Packets decoded per APID and the sum of ``CHECK_PARAMETER``'s engineering values, plus what came out."""
    name, apid = CHECK_PARAMETER
    if system in (SATLAKE, SATLAKE_CSV):
        import pyarrow.compute as pc

        from satlake.ground.xtce import load_mission_database

        db = load_mission_database(XTCE)
        counts = {a: result.tables[t.table].num_rows for a, t in db.packet_types.items() if t.table in result.tables}
        check = pc.sum(result.tables[db.packet_types[apid].table].column(name.lower())).as_py()
        alarms = result.parameters.filter(result.parameters.column("alarm_severity").is_valid()).num_rows
        output = (f"{result.packets.num_rows:,} packet rows, {result.parameters.num_rows:,} parameter rows, "
                  f"{alarms} in alarm, {result.rejects.num_rows} rejects")  # fmt: skip
    elif system == SPP:
        counts = dict(Counter(int(packet["PKT_APID"]) for packet in result))
        check = sum(float(packet[name]) for packet in result if int(packet["PKT_APID"]) == apid)
        output = f"{len(result):,} packet dicts"
    else:
        counts = {a: len(arrays["CCSDS_APID"]) for a, arrays in result.items()}
        check = float(result[apid][f"{name}_eng"].sum())
        output = f"{sum(len(arrays) for arrays in result.values())} field arrays over {len(result)} APIDs"
    return {"counts": {int(a): int(n) for a, n in sorted(counts.items())}, "check": round(check, 3), "output": output}


def decode_step(system: str, stream_path: str) -> dict[str, Any]:
    """Decode the packets in ``stream_path`` with ``system`` (in a fresh process): time, CPU, memory, fingerprint."""
    import gc

    stream = Path(stream_path).read_bytes()
    prepare: dict[str, Callable[[], Callable[[], Any]]] = {
        SATLAKE: lambda: _prepare_satlake(stream, XTCE),
        SATLAKE_CSV: lambda: _prepare_satlake(stream, LAYOUTS),
        SPP: lambda: _prepare_spp(stream),
        CCSDSPY: lambda: _prepare_ccsdspy(stream),
    }
    work = prepare[system]()
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        hwm_reset = True
    except OSError:
        hwm_reset = False
    rss_before = _status_kib("VmRSS")
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = work()
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_kib = _status_kib("VmHWM") if hwm_reset else usage.ru_maxrss
    cpu = usage.ru_utime + usage.ru_stime - usage_before.ru_utime - usage_before.ru_stime
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_increase_mib": round((peak_kib - rss_before) / 1024, 1),
        "bytes": len(stream),
        **_fingerprint(system, result),
    }


def measure_decode(stream_path: Path, packets: int, repeat: int) -> tuple[list[dict[str, Any]], list[dict]]:
    """Every decoder ``repeat`` times, the systems rotated each round; the fastest run of each is reported."""
    best: dict[str, dict[str, Any]] = {}
    walls: dict[str, list[float]] = {system: [] for system in DECODERS}
    for round_ in range(repeat):
        order = DECODERS[round_ % len(DECODERS) :] + DECODERS[: round_ % len(DECODERS)]
        for system in order:
            value = run_isolated(decode_step, system, str(stream_path)).value
            walls[system].append(round(value["wall_s"], 2))
            if system not in best or value["wall_s"] < best[system]["wall_s"]:
                best[system] = value
    rows = []
    for system in DECODERS:
        value = best[system]
        rows.append(
            {
                "part": "decode",
                "system": system,
                "packets": sum(value["counts"].values()),
                "wall_s": round(value["wall_s"], 2),
                "runs_wall_s": walls[system],
                "packets_per_s": round(packets / value["wall_s"]),
                "mb_per_s": round(value["bytes"] / 1e6 / value["wall_s"], 2),
                "cpu_s_per_million": round(value["cpu_s"] / packets * 1e6, 2),
                "peak_rss_increase_mib": value["peak_rss_increase_mib"],
                "packets_by_apid": value["counts"],
                f"sum_{CHECK_PARAMETER[0].lower()}": value["check"],
                "output": value["output"],
                "what": WHAT[system],
            }
        )
    ours = best[SATLAKE]
    comparisons = []
    for peer in (SPP, CCSDSPY):
        comparisons.append(
            comparison(f"decode packets/s: {SATLAKE} vs {peer}", round(packets / ours["wall_s"]),
                       round(packets / best[peer]["wall_s"]), "none: satlake does more per packet", None)
        )  # fmt: skip
    agree = all(best[s]["counts"] == ours["counts"] and abs(best[s]["check"] - ours["check"]) < 1e-3 for s in best)
    comparisons.append(
        comparison("decoded packets per APID and sum of BATT_V identical across systems", float(len(best)),
                   float(len(best)), "identical", agree, str({s: best[s]["check"] for s in DECODERS}))
    )  # fmt: skip
    if not agree:
        raise RuntimeError(f"the decoders disagree: { {s: (best[s]['counts'], best[s]['check']) for s in best} }")
    return rows, comparisons


# -- collectors ------------------------------------------------------------------------------------------------

# ``satlake collect`` through its command registrar (what the CLI's entry point calls): it works before the
# package's entry points are installed, and the process is the command's own.
COLLECT = """
import argparse, sys
from satlake.ground.collector_commands import add_collector_commands
parser = argparse.ArgumentParser()
add_collector_commands(parser.add_subparsers(dest="command"))
args = parser.parse_args(["collect", "--tcp-port", "0", "--http-port", "0", "--name", sys.argv[1],
                          "--log-level", "warning"])
sys.exit(args.func(args))
"""
READY = re.compile(r"listening on tcp://[^ ]+:(\d+) and http://[^ ]+:(\d+)")


@dataclass
class RunningCollector:
    """A collector process and its ports; ``stop`` ends it gracefully (SIGTERM)."""

    name: str
    pid: int
    tcp: int
    http: int
    stop: Callable[[], None]

    def cpu_s(self) -> float:
        """User + system CPU seconds the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
        return 0.0


def start_cli_collector(name: str, environment: dict[str, str], log_dir: Path) -> RunningCollector:
    """``satlake collect`` on free ports, in its own process; returns once it listens."""
    stderr = (log_dir / f"{name}.stderr").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", COLLECT, name], env=environment, stdout=subprocess.PIPE, stderr=stderr, text=True
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT_S)
    line = process.stdout.readline() if ready else ""
    match = READY.search(line)
    if not match:
        process.kill()
        process.wait()
        stderr.close()
        raise RuntimeError(f"collector {name} did not start: {line!r} {(log_dir / f'{name}.stderr').read_text()}")
    threading.Thread(target=process.stdout.read, daemon=True).start()  # nothing should block on a full pipe

    def stop() -> None:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(60)
        finally:
            if process.poll() is None:
                process.kill()
            stderr.close()
        if code != 0:
            raise RuntimeError(f"collector {name} exited with {code}: {(log_dir / f'{name}.stderr').read_text()}")

    return RunningCollector(name, process.pid, int(match.group(1)), int(match.group(2)), stop)


def serve_collector(kind: str, location: str, lake_root: str, name: str, connection: Any) -> None:
    """A collector on ``kind``'s log (``bench.ingest.open_event_log``) until SIGTERM (spawned process)."""
    from bench.ingest import open_event_log
    from satlake.ground.collector import run_collector
    from satlake.ground.collector_core import CollectorConfig
    from satlake.ground.registry import load_missions, load_stations
    from satlake.resources.lakehouse import Lakehouse

    lakehouse = Lakehouse(lake_root)
    event_log = open_event_log(kind, location)
    config = CollectorConfig(tcp_port=0, http_port=0, name=name)
    try:
        run_collector(event_log, lambda: load_missions(lakehouse), lambda: load_stations(lakehouse), config,
                      on_ready=lambda ports: connection.send((ports.tcp, ports.http)))  # fmt: skip
    finally:
        event_log.close()


def start_process_collector(name: str, kind: str, location: str, lake_root: str) -> RunningCollector:
    """A ``Collector`` in a spawned process of its own (for logs ``satlake collect`` reaches only in stack mode)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe(duplex=False)
    process = context.Process(target=serve_collector, args=(kind, location, lake_root, name, child_end))
    process.start()
    child_end.close()
    if not parent_end.poll(READY_TIMEOUT_S):
        process.kill()
        raise RuntimeError(f"collector {name} did not start within {READY_TIMEOUT_S:.0f}s")
    try:
        tcp, http = parent_end.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"collector {name} exited with {process.exitcode} while starting") from None

    def stop() -> None:
        process.terminate()  # SIGTERM: run_collector publishes what is in flight, then returns
        process.join(60)
        if process.exitcode != 0:
            raise RuntimeError(f"collector {name} exited with {process.exitcode}")

    assert process.pid is not None
    return RunningCollector(name, process.pid, tcp, http, stop)


def send_tcp(port: int, mission: str, data: bytes) -> dict[str, Any]:
    """One station's stream: AUTH, the packets, end of stream; the collector's ``DONE`` counts."""
    import json

    from satlake.ground.replay import auth_line

    with socket.create_connection(("127.0.0.1", port), timeout=300) as connection, connection.makefile("rb") as answers:
        connection.sendall(auth_line(STATION, TOKEN, mission, None))
        answer = answers.readline()
        if not answer.startswith(b"OK"):
            raise RuntimeError(f"collector on port {port} refused the stream: {answer!r}")
        view = memoryview(data)
        for start in range(0, len(data), SEND_CHUNK):
            connection.sendall(view[start : start + SEND_CHUNK])
        connection.shutdown(socket.SHUT_WR)
        answer = answers.readline()
    if not answer.startswith(b"DONE "):
        raise RuntimeError(f"collector on port {port} answered {answer!r} instead of DONE")
    return dict(json.loads(answer[5:]))


def post_bodies(packets: Sequence[bytes], limit: int) -> list[bytes]:
    """Bodies of whole packets back to back, each at most ``limit`` bytes."""
    bodies, current, size = [], [], 0
    for packet in packets:
        if current and size + len(packet) > limit:
            bodies.append(b"".join(current))
            current, size = [], 0
        current.append(packet)
        size += len(packet)
    if current:
        bodies.append(b"".join(current))
    return bodies


def send_http(port: int, mission: str, bodies: Sequence[bytes]) -> dict[str, Any]:
    """POST the bodies one after another on a keep-alive session (429 and 503 waited out and retried)."""
    import requests

    from satlake.ground.replay_http import post_piece

    url = f"http://127.0.0.1:{port}/v1/missions/{mission}/packets"
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Satlake-Station": STATION,
               "Content-Type": "application/octet-stream"}  # fmt: skip
    accepted = rejected = 0
    with requests.Session() as session:
        for body in bodies:
            answer = post_piece(session, url, body, headers, {})
            accepted += int(answer["accepted"])
            rejected += int(answer["rejected"])
    return {"accepted": accepted, "rejected": rejected}


def shares(packets: Sequence[bytes], senders: int) -> list[list[bytes]]:
    return [list(packets[i * len(packets) // senders : (i + 1) * len(packets) // senders]) for i in range(senders)]


def payload_digest(payloads: Iterator[bytes]) -> tuple[int, int, int]:
    """(count, bytes, order-free checksum) of packets."""
    count = size = checksum = 0
    for payload in payloads:
        count += 1
        size += len(payload)
        checksum = (checksum + zlib.crc32(payload)) % (1 << 64)
    return count, size, checksum


def logged_payloads(event_log: Any, topic: str, start: dict[int, int], end: dict[int, int]) -> Iterator[bytes]:
    """The packets of the envelopes between ``start`` and ``end`` offsets; raises on a reject or a stranger."""
    from satlake.ground.envelope import Kind, unwrap

    offsets = {p: start.get(p, 0) for p in end}
    while any(offsets[p] < end[p] for p in end):
        unread = {p: offsets[p] for p in end if offsets[p] < end[p]}  # (left out of the offsets, one starts at 0)
        records = event_log.read_columns(topic, unread, 50_000, partitions=list(unread))
        if not len(records):
            raise RuntimeError(f"{topic}: nothing to read below the end offsets {end} (at {offsets})")
        for partition, offset, value in zip(records.partition, records.offset, records.value, strict=True):
            partition, offset = int(partition), int(offset)
            if not offsets[partition] <= offset < end[partition]:
                continue
            offsets[partition] = max(offsets[partition], offset + 1)
            envelope = unwrap(value.as_py())
            if envelope.kind != Kind.PACKET or envelope.station != STATION:
                raise RuntimeError(f"{topic} partition {partition} offset {offset}: {envelope.kind!r} "
                                   f"from {envelope.station!r} ({envelope.reason})")  # fmt: skip
            yield envelope.payload


def settled_end_offsets(event_log: Any, topic: str, start: dict[int, int], expected: int) -> dict[int, int]:
    """End offsets once ``expected`` records were added after ``start`` (Kafka's may trail the acks briefly)."""
    deadline = time.monotonic() + 30
    while True:
        end = event_log.end_offsets(topic)
        added = sum(end[p] - start.get(p, 0) for p in end)
        if added >= expected or time.monotonic() > deadline:
            return end
        time.sleep(0.2)


@dataclass
class LogTarget:
    """Where the collectors publish: the log's kind and location, the mission (and so the topic) to send."""

    label: str
    kind: str
    location: str
    mission: str
    topic: str


def run_scenario(
    target: LogTarget,
    start_collector: Callable[[str], RunningCollector],
    packets: Sequence[bytes],
    collectors: int,
    senders: int,
    transport: str,
    post_bytes: int = 0,
) -> dict[str, Any]:
    """Fresh collectors, warmed up; then every sender at once; then the log read back and compared."""
    from bench.ingest import open_event_log

    running = [start_collector(f"c{n + 1}") for n in range(collectors)]
    event_log = open_event_log(target.kind, target.location)
    try:
        for collector in running:  # loads missions and stations, creates the topic, opens the log
            send_tcp(collector.tcp, target.mission, b"".join(packets[:WARM_UP_PACKETS]))
        start = event_log.end_offsets(target.topic)
        parts = shares(packets, senders)
        if transport == "tcp":
            jobs = [(send_tcp, running[i % collectors].tcp, b"".join(part)) for i, part in enumerate(parts)]
        else:
            jobs = [(send_http, running[i % collectors].http, post_bodies(part, post_bytes))
                    for i, part in enumerate(parts)]  # fmt: skip
        cpu_before = [collector.cpu_s() for collector in running]
        with ThreadPoolExecutor(senders) as pool:
            started = time.perf_counter()
            futures = [pool.submit(function, port, target.mission, data) for function, port, data in jobs]
            answers = [future.result() for future in futures]
            wall = time.perf_counter() - started
        cpu = sum(c.cpu_s() - before for c, before in zip(running, cpu_before, strict=True))
        peak = max(collector.peak_rss_mib() for collector in running)
    finally:
        failures = []
        for collector in running:
            try:
                collector.stop()
            except Exception as error:  # stop the others anyway
                failures.append(error)
        if failures:
            raise failures[0]
    accepted = sum(int(a["accepted"]) for a in answers)
    rejected = sum(int(a["rejected"]) for a in answers)
    end = settled_end_offsets(event_log, target.topic, start, len(packets))
    logged = payload_digest(logged_payloads(event_log, target.topic, start, end))
    event_log.close()
    sent = payload_digest(iter(packets))
    if (accepted, rejected) != (len(packets), 0) or logged != sent:
        raise RuntimeError(
            f"{target.label} {transport} x{collectors}: sent {sent[0]} packets ({sent[1]} bytes), the collectors "
            f"acknowledged {accepted} (+{rejected} rejects), the log holds {logged[0]} ({logged[1]} bytes); "
            f"checksums {'match' if logged[2] == sent[2] else 'differ'}"
        )
    what = (
        f"{senders} TCP streams" if transport == "tcp" else f"{senders} senders, POSTs of <= {post_bytes // 1024} KiB"
    )
    return {
        "part": "collector",
        "log": target.label,
        "system": f"satlake collect x{collectors}",
        "transport": transport,
        "senders": what,
        "packets": len(packets),
        "mb": round(sent[1] / 1e6, 2),
        "wall_s": round(wall, 2),
        "packets_per_s": round(len(packets) / wall),
        "mb_per_s": round(sent[1] / 1e6 / wall, 2),
        "collector_cpu_s_per_million": round(cpu / len(packets) * 1e6, 2),
        "collector_peak_rss_mib": peak,
        "requests": sum(len(data) for _, _, data in jobs) if transport == "http" else senders,
        "in_log": logged[0],
        "verified": logged == sent,
    }


def register(lake_root: str, environment: dict[str, str], kafka_topic: str | None = None) -> None:
    """The mission and the bench's station in the catalog under ``lake_root`` (and a Kafka twin of the mission)."""
    from satlake.ground.registry import add_mission, add_station
    from satlake.resources.lakehouse import Lakehouse
    from satlake.settings import Settings

    settings = Settings.from_env(environment)
    lakehouse = Lakehouse(lake_root)
    add_mission(lakehouse, settings, MISSION, XTCE)
    if kafka_topic is not None:
        add_mission(lakehouse, settings, f"{MISSION}_kafka", XTCE, topic=kafka_topic)
    add_station(lakehouse, STATION, token=TOKEN)


def collector_scenarios(
    target: LogTarget,
    start_collector: Callable[[str], RunningCollector],
    packets: Sequence[bytes],
    senders: int,
    http: bool,
) -> list[dict[str, Any]]:
    rows = [run_scenario(target, start_collector, packets, collectors, senders, "tcp") for collectors in (1, 2)]
    if http:
        rows += [run_scenario(target, start_collector, packets, 1, senders, "http", size) for size in POST_BYTES]
    return rows


def measure_collectors(
    workdir: Path, packets: Sequence[bytes], senders: int, kafka: str | None
) -> tuple[list[dict[str, Any]], list[str]]:
    root = workdir / "root"
    environment = {**os.environ, "SATLAKE_ROOT": str(root), "SATLAKE_MODE": "embedded",
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    notes: list[str] = []
    kafka_topic = None
    if kafka:
        reason = kafka_unavailable(kafka)
        if reason:
            notes.append(f"Kafka half not measured: {reason}")
            kafka = None
    with contextlib.ExitStack() as stack:
        if kafka:
            from bench.ingest import throwaway_topic

            kafka_topic = stack.enter_context(throwaway_topic(kafka, prefix=f"bench.packets.{uuid.uuid4().hex[:4]}"))
        register(str(root / "lake"), environment, kafka_topic)
        embedded = LogTarget("embedded", "local", str(root / "log"), MISSION, f"satlake.packets.{MISSION}")
        rows = collector_scenarios(
            embedded, lambda name: start_cli_collector(name, environment, workdir), packets, senders, http=True
        )
        if kafka and kafka_topic:
            target = LogTarget("kafka", "kafka", kafka, f"{MISSION}_kafka", kafka_topic)
            lake = str(root / "lake")
            rows += collector_scenarios(
                target, lambda name: start_process_collector(name, "kafka", kafka, lake), packets, senders, http=False
            )
    return rows, notes


def kafka_unavailable(bootstrap: str) -> str | None:
    """Why the broker cannot be used (None: it answers)."""
    try:
        from confluent_kafka.admin import AdminClient

        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5)
    except Exception as error:
        return f"{bootstrap}: {type(error).__name__}: {error}"
    return None


# -- the run ---------------------------------------------------------------------------------------------------


def collector_comparisons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    comparisons = []
    for label in ("embedded", "kafka"):
        tcp = {r["system"]: r for r in rows if r.get("log") == label and r["transport"] == "tcp"}
        if len(tcp) == 2:
            one, two = tcp["satlake collect x1"], tcp["satlake collect x2"]
            comparisons.append(
                comparison(f"{label}: two collectors vs one, packets/s", two["packets_per_s"], one["packets_per_s"],
                           "none (2 cores shared with the senders)", None)
            )  # fmt: skip
        for row in (r for r in rows if r.get("log") == label):
            comparisons.append(
                comparison(f"{label}: {row['system']} {row['transport']} ({row['senders']}): packets in the log",
                           row["in_log"], row["packets"], "every packet sent, same bytes", row["verified"])
            )  # fmt: skip
    return comparisons


def run(
    workdir: Path, decode_packets: int, collector_packets: int, senders: int, repeat: int, kafka: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    started = time.perf_counter()
    packets = simulate(decode_packets)
    simulate_s = time.perf_counter() - started
    stream_path = workdir / "packets.bin"
    stream_path.write_bytes(b"".join(packets))
    rows, comparisons = measure_decode(stream_path, len(packets), repeat)
    # The collectors get the same packets, repeated up to their count (a collector does not look at sequence counts).
    cycled = [packets[i % len(packets)] for i in range(collector_packets)]
    collector_rows, notes = measure_collectors(workdir, cycled, senders, kafka)
    rows += collector_rows
    comparisons += collector_comparisons(collector_rows)
    mean = stream_path.stat().st_size / len(packets)
    notes.insert(0, f"{len(packets):,} DEMOSAT packets (APIDs 100/101/102, 23/45/32 bytes, mean {mean:.1f} bytes) "
                    f"simulated in {simulate_s:.1f}s; decode best of {repeat}; collectors: {collector_packets:,} "
                    f"packets over {senders} concurrent senders")  # fmt: skip
    return rows, comparisons, notes


@contextlib.contextmanager
def ccsdspy_config_dir(scratch: Path) -> Iterator[None]:
    """A writable ``ccsdspy_CONFIGDIR`` for the spawned steps (ccsdspy needs one when imported) unless one is set;
    the variable is restored afterwards, since the directory goes with the scratch directory."""
    name = "ccsdspy_CONFIGDIR"  # ccsdspy's spelling
    if os.environ.get(name):
        yield
        return
    os.environ[name] = tempfile.mkdtemp(prefix="ccsdspy-", dir=scratch)
    try:
        yield
    finally:
        os.environ.pop(name, None)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="full", help="full: the figures (default); small: smoke")
    parser.add_argument("--quick", action="store_true", help="the smoke size (same as --size small)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default: bench/results/ground.json)")
    parser.add_argument("--decode-packets", type=int, default=None, help="packets decoded (full: 100,000)")
    parser.add_argument("--collector-packets", type=int, default=None, help="packets sent (full: 500,000)")
    parser.add_argument("--senders", type=int, default=None, help="concurrent senders (full: 4)")
    parser.add_argument("--repeat", type=int, default=None, help="decode runs per system, best kept (full: 2)")
    parser.add_argument("--kafka", default=None, help="bootstrap servers of a Kafka broker to also measure")
    args = parser.parse_args(argv)
    size = "small" if args.quick else args.size
    defaults = DEFAULTS[size]
    chosen = {name: getattr(args, name) if getattr(args, name) is not None else value
              for name, value in defaults.items()}  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="satlake-bench-ground-", dir=args.workdir) as scratch,
        ccsdspy_config_dir(Path(scratch)),
    ):
        rows, comparisons, notes = run(Path(scratch), **chosen, kafka=args.kafka)
    decode_columns = ["system", "packets", "wall_s", "packets_per_s", "mb_per_s", "cpu_s_per_million",
                      "peak_rss_increase_mib", "output"]  # fmt: skip
    collector_columns = ["log", "system", "transport", "senders", "packets", "wall_s", "packets_per_s", "mb_per_s",
                         "collector_cpu_s_per_million", "collector_peak_rss_mib", "in_log", "verified"]  # fmt: skip
    print_table([r for r in rows if r["part"] == "decode"], decode_columns)
    print()
    print_table([r for r in rows if r["part"] == "collector"], collector_columns)
    print()
    print_table(comparisons, ["metric", "ours", "peer", "ratio", "met"])
    for note in notes:
        print(note)
    data_size = (f"{chosen['decode_packets']:,} DEMOSAT packets decoded; {chosen['collector_packets']:,} sent "
                 f"through collectors by {chosen['senders']} senders")  # fmt: skip
    options = [f"--{name.replace('_', '-')} {value}" for name, value in chosen.items() if value != defaults[name]]
    options += [f"--kafka {args.kafka}"] if args.kafka else []
    path = write_result("ground", size, data_size, rows, comparisons, args.out, notes, " ".join(options))
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
