{#- One row per alarm of a mission parameter, with Yamcs' semantics (satlake/ground/alarms.py judges each sample
    against the mission database's DefaultAlarm / ContextAlarm ranges; the verdicts are in bronze.parameters):

    - every sample is archived whatever its state; only parameters with an alarm definition are considered here;
    - samples are taken per (mission, apid, parameter) in time order (packet time, else ground time; then the
      sequence count and the log position);
    - a run of consecutive out-of-limits samples is one episode; an in-limits sample ends it;
    - an episode becomes an alarm once it holds alarm_min_violations samples (the XTCE minViolations of the alarm
      that applied to its first sample): triggered_at is the time of that sample and trigger_severity its
      severity. A shorter episode is a glitch, not an alarm (Yamcs clears a pending alarm silently);
    - severity is the worst severity of the episode (Yamcs' SEVERITY_INCREASED updates);
    - returned_at is the first in-limits sample after it (Yamcs' RTN); null while the alarm is active. With no
      operator acknowledging here, an alarm that returned to normal is cleared (XTCE alarms are not latching).
    Rebuilt whole every run from bronze. -#}
{{ assert_object_store_credentials('bronze/parameters') }}

with samples as (
    select
        mission, apid, packet_type, parameter, unit, eng_value, eng_text, alarm_severity, alarm_limit,
        alarm_min_violations, station,
        coalesce(packet_time, ground_time) as sample_time,
        sequence_count, "partition", "offset",
        case alarm_severity
            when 'watch' then 1 when 'warning' then 2 when 'distress' then 3 when 'critical' then 4
            when 'severe' then 5 else 0
        end as level
    from {{ source('bronze', 'parameters') }}
    where alarm_min_violations is not null
),

numbered as (
    select
        *,
        -- In-limits samples so far: consecutive violations share the count, each in-limits sample starts anew.
        sum(case when level = 0 then 1 else 0 end) over (
            partition by mission, apid, parameter
            order by sample_time, sequence_count, "partition", "offset"
            rows between unbounded preceding and current row
        ) as episode
    from samples
),

violations as (
    select
        *,
        row_number() over (
            partition by mission, apid, parameter, episode
            order by sample_time, sequence_count, "partition", "offset"
        ) as violation_number,
        first_value(alarm_min_violations) over (
            partition by mission, apid, parameter, episode
            order by sample_time, sequence_count, "partition", "offset"
        ) as min_violations
    from numbered
    where level > 0
),

episodes as (
    select
        mission, apid, parameter,
        episode,
        any_value(packet_type) as packet_type,
        any_value(unit) as unit,
        min(min_violations) as min_violations,
        count(*) as violations,
        min(sample_time) as first_violation_at,
        max(sample_time) as last_violation_at,
        max(case when violation_number = min_violations then sample_time end) as triggered_at,
        max(case when violation_number = min_violations then alarm_severity end) as trigger_severity,
        max(case when violation_number = min_violations then eng_value end) as trigger_value,
        max(case when violation_number = min_violations then alarm_limit end) as trigger_limit,
        max(level) as worst_level,
        arg_max(eng_value, level * 1e12 - violation_number) as worst_value
    from violations
    group by mission, apid, parameter, episode
),

returns as (
    -- The in-limits sample that ends episode e is the first sample of count e + 1.
    select mission, apid, parameter, episode - 1 as episode, min(sample_time) as returned_at
    from numbered
    where level = 0
    group by mission, apid, parameter, episode
)

select
    e.mission,
    cast(e.apid as integer) as apid,
    e.packet_type,
    e.parameter,
    e.unit,
    e.trigger_severity,
    case e.worst_level
        when 1 then 'watch' when 2 then 'warning' when 3 then 'distress' when 4 then 'critical' else 'severe'
    end as severity,
    e.trigger_value,
    e.trigger_limit,
    e.worst_value,
    cast(e.violations as integer) as violations,
    cast(e.min_violations as integer) as min_violations,
    e.first_violation_at,
    e.triggered_at,
    e.last_violation_at,
    r.returned_at,
    case when r.returned_at is null then 'active' else 'returned_to_normal' end as status
from episodes e
left join returns r using (mission, apid, parameter, episode)
where e.violations >= e.min_violations
