"""Coverage-guided fuzzing (atheris / libFuzzer) of the telemetry event decoder for a bounded time.

``python -m bench.fuzz_decoder --seconds 60`` runs the fuzzer in a child process seeded with valid events,
then prints (and with ``--json PATH`` writes) executions, runs per second, coverage and crashes found. A crash is
any exception other than ``EventDecodeError``, or an accepted payload that does not re-encode to the same
values; its input is saved under ``--artifacts`` and the command exits 1.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER_FLAG = "--worker"
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STATUS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+).*?exec/s: (\d+)")


def seed_payloads() -> list[bytes]:
    """Valid events of every name alignment plus an empty-name one: the fuzzer mutates from these."""
    from satlake.telemetry.codec import TelemetryReading, encode_event, encode_event_with_builder

    seeds = []
    for length in range(0, 9):
        reading = TelemetryReading("S" * length, 1_700_000_000_000_000_000, 21.5, 80.0, 550.0, 0.1, 0.2, 0.3)
        seeds.extend([encode_event(reading), encode_event_with_builder(reading)])
    return seeds


def run_worker(libfuzzer_args: list[str]) -> None:
    """The fuzz target, run inside the child: decode, and re-encode whatever is accepted."""
    import atheris

    with atheris.instrument_imports():
        from satlake.telemetry.codec import EventDecodeError, TelemetryReading, decode_event_fields, encode_event

    pack = struct.Struct("<6d").pack

    def test_one_input(data: bytes) -> None:
        try:
            fields = decode_event_fields(data)
        except EventDecodeError as error:
            if not error.reason_code or not error.detail:
                raise AssertionError(f"rejection without a reason: {error!r}") from error
            return
        again = decode_event_fields(encode_event(TelemetryReading(*fields)))
        if again[:2] != fields[:2] or pack(*again[2:]) != pack(*fields[2:]):
            raise AssertionError(f"accepted payload does not round-trip: {fields!r} -> {again!r}")

    atheris.Setup([sys.argv[0], *libfuzzer_args], test_one_input)
    atheris.Fuzz()


def fuzz(seconds: int, artifacts: Path) -> dict[str, object]:
    """Run the fuzzer for ``seconds`` in a child process and summarise what libFuzzer reported."""
    artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="satlake-fuzz-corpus-") as corpus:
        for index, payload in enumerate(seed_payloads()):
            Path(corpus, f"seed-{index:02d}").write_bytes(payload)
        command = [
            sys.executable,
            "-m",
            "bench.fuzz_decoder",
            WORKER_FLAG,
            f"-max_total_time={seconds}",
            f"-artifact_prefix={artifacts}/",
            "-print_final_stats=1",
            corpus,
        ]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=seconds + 120)
        elapsed = time.perf_counter() - started
    log = done.stderr
    finished = _DONE.search(log)
    statuses = _STATUS.findall(log)
    executions = int(finished.group(1)) if finished else (int(statuses[-1][0]) if statuses else 0)
    crashes = sorted(str(path) for path in artifacts.glob("crash-*"))
    return {
        "seconds_requested": seconds,
        "seconds_elapsed": round(elapsed, 1),
        "executions": executions,
        "runs_per_second": round(executions / max(float(finished.group(2)) if finished else elapsed, 1e-9)),
        "coverage_edges": int(statuses[-1][1]) if statuses else None,
        "features": int(statuses[-1][2]) if statuses else None,
        "crashes": len(crashes),
        "crash_inputs": crashes,
        "exit_code": done.returncode,
        "log_tail": log.strip().splitlines()[-8:],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == WORKER_FLAG:
        run_worker(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz_decoder", description=__doc__)
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time budget (default 60)")
    parser.add_argument("--artifacts", type=Path, default=Path(".satlake/fuzz"), help="where crash inputs go")
    parser.add_argument("--json", type=Path, help="also write the summary to this file")
    args = parser.parse_args(argv)
    try:
        import atheris  # noqa: F401 - checked here so a missing install is one clear line, not a child traceback
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    summary = fuzz(args.seconds, args.artifacts)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if summary["crashes"] or summary["exit_code"] not in (0,) else 0


if __name__ == "__main__":
    sys.exit(main())
