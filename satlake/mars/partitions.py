"""How the Mars assets are partitioned, and why.

Manifests and traverses are per rover: a static partition per rover the API serves. Photos are per rover and
sol: a two-dimensional partition of the static rovers and a dynamic sol dimension, to which the request sensor
adds the sols requested. Two dimensions rather than one dynamic "rover-sol" key because the Dagster UI then
selects "curiosity, sols 1000 to 1100" directly, and a backfill of such a selection runs as one run per rover
(Dagster groups a multi-partition selection by its smaller dimension, and ``BackfillPolicy.single_run`` makes
each group one run): one session, one request budget and one manifest lookup per rover. The price is that a
sol requested for one rover is a (never materialized) partition of the others too, which the checks ignore.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dagster as dg

from satlake.mars.rovers import ROVERS, sol_key

ROVER_PARTITIONS = dg.StaticPartitionsDefinition(sorted(ROVERS))
SOL_PARTITIONS = dg.DynamicPartitionsDefinition(name="mars_sols")
ROVER_SOL_PARTITIONS = dg.MultiPartitionsDefinition({"rover": ROVER_PARTITIONS, "sol": SOL_PARTITIONS})
REQUEST_TAG = "satlake/mars_request"


def rover_sol_key(rover: str, sol: int) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"rover": rover, "sol": sol_key(sol)})


def rover_sols(partition_keys: Iterable[str]) -> dict[str, list[int]]:
    """Rover -> its sols (sorted) among multi-partition keys such as ``curiosity|01000``."""
    by_rover: dict[str, set[int]] = {}
    for key in partition_keys:
        dimensions = ROVER_SOL_PARTITIONS.get_partition_key_from_str(str(key)).keys_by_dimension
        by_rover.setdefault(dimensions["rover"], set()).add(int(dimensions["sol"]))
    return {rover: sorted(sols) for rover, sols in sorted(by_rover.items())}


def sol_ranges(sols: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive runs of ``sols`` (sorted) as (first, last) pairs."""
    ranges: list[tuple[int, int]] = []
    for sol in sols:
        if ranges and sol == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], sol)
        else:
            ranges.append((sol, sol))
    return ranges


def request_id_of(context: dg.AssetExecutionContext) -> str:
    """The request a run serves: the request event's id, or the run's own id for a run started from the UI."""
    return context.run.tags.get(REQUEST_TAG) or f"run-{context.run.run_id[:8]}"
