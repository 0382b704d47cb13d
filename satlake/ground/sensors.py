"""The ground sensor: every registered mission is a partition, and packets waiting on a mission's topic become a
run of its raw and bronze partitions.

A tick reads only offsets (the topic's end, the raw table's committed positions), never packets.
"""

import dagster as dg

from satlake.automation import SENSOR_DEFAULT_STATUS
from satlake.ground.ingest import pending_packets
from satlake.ground.registry import load_missions
from satlake.resources.event_log import EventLog, EventLogError
from satlake.resources.lakehouse import Lakehouse

GROUND_JOB = "ground_packets_job"


@dg.sensor(
    name="ground_packets_sensor",
    job_name=GROUND_JOB,
    minimum_interval_seconds=30,
    default_status=SENSOR_DEFAULT_STATUS,
    description="Adds a partition per registered mission, and runs a mission's raw/packets and bronze when its "
    "topic holds packets not yet in raw/packets.",
)
def ground_packets_sensor(
    context: dg.SensorEvaluationContext,
    event_log: dg.ResourceParam[EventLog],
    lakehouse: dg.ResourceParam[Lakehouse],
) -> dg.SensorResult | dg.SkipReason:
    missions = load_missions(lakehouse)
    if not missions:
        return dg.SkipReason("no mission registered (`satlake mission add NAME --xtce FILE`)")
    known = set(context.instance.get_dynamic_partitions("missions"))
    new = sorted(set(missions) - known)
    if new:  # added before the runs are requested: a run request for an unknown partition is refused
        context.instance.add_dynamic_partitions("missions", new)
        context.log.info(f"new mission partitions: {', '.join(new)}")
    runs, waiting = [], []
    for name, mission in sorted(missions.items()):
        try:
            pending = pending_packets(event_log, lakehouse, mission.topic)
        except EventLogError as error:
            context.log.warning(f"{name}: {error}")
            continue
        if pending:
            end = event_log.end_offsets(mission.topic)
            run_key = f"{name}:" + ",".join(f"{p}={o}" for p, o in sorted(end.items()))
            runs.append(dg.RunRequest(run_key=run_key, partition_key=name, tags={"satlake/mission": name}))
            waiting.append(f"{name} ({pending} records)")
    if runs:
        context.log.info(f"packets waiting: {', '.join(waiting)}")
    return dg.SensorResult(run_requests=runs, skip_reason=None if runs or new else "no packets waiting")
