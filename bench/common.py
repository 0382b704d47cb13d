"""Shared plumbing for the benchmarks: machine description, timing, peak memory, isolated runs and result files.

Peak memory is read from the kernel (``getrusage`` / ``wait4``), so every measured step runs in its own process and
its high-water mark is not mixed up with the benchmark driver's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SIZES = ("small", "full")


@dataclass(frozen=True, slots=True)
class Measured:
    """Wall time, CPU time and peak resident memory of one isolated step, and what the step returned."""

    value: Any
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    # CLOCK_MONOTONIC is system-wide on Linux, so spans of parallel processes can be combined.
    started_at: float = 0.0
    finished_at: float = 0.0


def machine_info() -> dict[str, Any]:
    """CPU model and count, memory and software versions, read from /proc and the interpreter."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cpu_model": model,
        "cpus": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kib / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        # Other work shares these cores; the 1-minute load average says how busy the machine was.
        "load_average_1m": os.getloadavg()[0],
    }


def bytes_mib(value: float) -> float:
    return round(value / 1024**2, 1)


def _rusage_cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _child_entry(connection: Any, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    started_at = time.monotonic()
    started, usage_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    try:
        value, error = function(*args), None
    except BaseException as exc:  # the parent re-raises it with the traceback text
        import traceback

        value, error = None, "".join(traceback.format_exception(exc))
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = _rusage_cpu(usage) - _rusage_cpu(usage_before)
    connection.send((value, error, wall, cpu, usage.ru_maxrss, started_at, time.monotonic()))
    connection.close()


def run_isolated(function: Callable[..., Any], *args: Any) -> Measured:
    """Run ``function(*args)`` in a fresh (spawned) interpreter and measure it there.

    Wall and CPU time cover only the call, not the interpreter start; peak RSS is the process's high-water mark.
    """
    return run_isolated_parallel([(function, args)])[0]


def run_isolated_parallel(calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Measured]:
    """Run each call in its own spawned process at the same time; one ``Measured`` per call, in order."""
    context = multiprocessing.get_context("spawn")
    started: list[tuple[Any, Any]] = []
    for function, args in calls:
        parent_end, child_end = context.Pipe(duplex=False)
        process = context.Process(target=_child_entry, args=(child_end, function, args))
        process.start()
        child_end.close()
        started.append((process, parent_end))
    results = []
    for process, parent_end in started:
        try:
            value, error, wall, cpu, maxrss_kib, started_at, finished_at = parent_end.recv()
        except EOFError:
            process.join()
            raise RuntimeError(
                f"benchmark step {calls[len(results)][0].__name__} died with exit code {process.exitcode} "
                "before reporting (out of memory? killed?)"
            ) from None
        process.join()
        if error is not None:
            raise RuntimeError(f"benchmark step {calls[len(results)][0].__name__} failed:\n{error}")
        peak = round(maxrss_kib / 1024, 1)
        results.append(Measured(value, wall, cpu, peak, started_at, finished_at))
    return results


def parallel_wall_s(measured: Sequence[Measured]) -> float:
    """Seconds from the first call's start to the last call's end (interpreter start-up excluded)."""
    return max(m.finished_at for m in measured) - min(m.started_at for m in measured)


def run_command(command: Sequence[str], env: dict[str, str] | None = None) -> Measured:
    """Run an external command, failing loudly with its stderr; peak RSS and CPU come from ``wait4``."""
    started = time.perf_counter()
    process = subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    # Read the pipes before reaping so a chatty command cannot block on a full pipe.
    stdout, stderr = process.stdout.read(), process.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(command)} exited with {process.returncode}: {stderr.decode(errors='replace')[-2000:]}"
        )
    return Measured(
        value=stdout.decode(errors="replace"),
        wall_s=wall,
        cpu_s=_rusage_cpu(usage),
        peak_rss_mib=round(usage.ru_maxrss / 1024, 1),
    )


def measurement_row(system: str, step: str, measured: Measured, events: int, **extra: Any) -> dict[str, Any]:
    """One result row for ``events`` processed in ``measured``: events/s, CPU-seconds per million, peak RSS."""
    return {
        "system": system,
        "step": step,
        "events": events,
        "wall_s": round(measured.wall_s, 2),
        "events_per_s": round(events / measured.wall_s),
        "cpu_s_per_million": round(measured.cpu_s / events * 1e6, 2),
        "peak_rss_mib": measured.peak_rss_mib,
        **extra,
    }


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty sequence."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


def comparison(
    metric: str, ours: float | None, peer: float | None, target: str, met: bool | None, note: str = ""
) -> dict[str, Any]:
    """One row of the side-by-side table; ratio is ours / peer."""
    ratio = round(ours / peer, 3) if ours is not None and peer not in (None, 0) else None
    return {"metric": metric, "ours": ours, "peer": peer, "ratio": ratio, "target": target, "met": met, "note": note}


def size_argument(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size", choices=SIZES, default="small", help="small: smoke test; full: the figures")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default: bench/results/<name>.json)")
    return parser.parse_args(argv)


def write_result(
    name: str,
    size: str,
    data_size: str,
    rows: list[dict[str, Any]],
    comparisons: list[dict[str, Any]],
    out: Path | None = None,
    notes: Sequence[str] = (),
    extra_arguments: str = "",
) -> Path:
    """Write the benchmark's result JSON and return its path; ``extra_arguments`` completes the command line."""
    path = out or RESULTS_DIR / (f"{name}.json" if size == "full" else f"{name}.{size}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "size": size,
        "data_size": data_size,
        "command": f"python -m bench.{name} --size {size}{' ' + extra_arguments if extra_arguments else ''}",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "rows": rows,
        "comparisons": comparisons,
        "notes": list(notes),
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def print_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Print rows as an aligned text table (columns default to the union of keys, in first-seen order)."""
    if not rows:
        return
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    sys.stdout.flush()
