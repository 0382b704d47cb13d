{#- Per satellite and UTC day: how completely it reported, how its battery, temperature and altitude behaved,
    how many anomalies it had, and a status.

    Coverage: a satellite's expected cadence is the median interval between its consecutive readings that day.
    Expected readings = floor(span / cadence) + 1, where span runs from the fleet's first to the fleet's last
    reading of the day, so a satellite that falls silent while the others keep reporting loses coverage.

    Status, first rule that matches:
      critical  any critical or severe limit alarm, or coverage_ratio < var('health_coverage_critical')
      degraded  any warning or distress limit alarm,
                outlier_share (statistical outliers per reading) > var('health_max_outlier_share'),
                coverage_ratio < var('health_coverage_degraded'), coverage unknown (fewer than two readings),
                or max_depth_of_discharge_pct > var('health_max_depth_of_discharge_pct')
    A watch alarm is counted but changes no status.
    A lone transient (a heater spike, a saturated sensor sample) is an anomaly row but does not degrade a day;
    a satellite whose readings keep jumping does.
      ok        otherwise
    status_reasons lists every rule that matched, so a person sees why without rerunning the query. -#}
with readings as (
    select *
    from {{ ref('telemetry_clean') }}
    where {{ in_window() }}
),

intervals as (
    select
        event_date,
        satellite_name,
        timestamp_ns - lag(timestamp_ns) over (
            partition by event_date, satellite_name order by timestamp_ns
        ) as interval_ns
    from readings
),

cadence as (
    select
        event_date,
        satellite_name,
        median(interval_ns) / 1e9 as median_interval_s
    from intervals
    where interval_ns is not null
    group by event_date, satellite_name
),

fleet_span as (
    select
        event_date,
        (max(timestamp_ns) - min(timestamp_ns)) / 1e9 as fleet_span_s
    from readings
    group by event_date
),

daily as (
    select
        event_date,
        satellite_name,
        count(*) as reading_count,
        min(event_time) as first_reading_at,
        max(event_time) as last_reading_at,
        min(battery_charge_pct) as battery_min_pct,
        {{ exact_avg("battery_charge_pct") }} as battery_avg_pct,
        max(battery_charge_pct) as battery_max_pct,
        min(temp_c) as temp_min_c,
        max(temp_c) as temp_max_c,
        {{ exact_avg("altitude_km") }} as altitude_avg_km,
        arg_max(altitude_km, timestamp_ns) - arg_min(altitude_km, timestamp_ns) as altitude_drift_km
    from readings
    group by event_date, satellite_name
),

anomaly_counts as (
    select
        event_date,
        satellite_name,
        count(*) filter (where kind = 'range_violation') as range_violation_count,
        count(*) filter (where kind = 'statistical_outlier') as statistical_outlier_count,
        {%- for severity in alarm_severities() %}
        count(*) filter (where kind = 'range_violation' and severity = '{{ severity }}') as {{ severity }}_alarm_count{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ ref('telemetry_anomalies') }}
    where {{ in_window() }}
    group by event_date, satellite_name
),

measured as (
    select
        d.event_date,
        d.satellite_name,
        d.reading_count,
        d.first_reading_at,
        d.last_reading_at,
        c.median_interval_s,
        cast(floor(f.fleet_span_s / c.median_interval_s) + 1 as bigint) as expected_reading_count,
        least(1.0, d.reading_count / (floor(f.fleet_span_s / c.median_interval_s) + 1)) as coverage_ratio,
        d.battery_min_pct,
        d.battery_avg_pct,
        d.battery_max_pct,
        100.0 - d.battery_min_pct as max_depth_of_discharge_pct,
        d.temp_min_c,
        d.temp_max_c,
        d.temp_max_c - d.temp_min_c as temp_range_c,
        d.altitude_avg_km,
        d.altitude_drift_km,
        coalesce(a.range_violation_count, 0) as range_violation_count,
        coalesce(a.statistical_outlier_count, 0) as statistical_outlier_count,
        coalesce(a.range_violation_count, 0) + coalesce(a.statistical_outlier_count, 0) as anomaly_count,
        coalesce(a.statistical_outlier_count, 0) / d.reading_count as outlier_share,
        {%- for severity in alarm_severities() %}
        coalesce(a.{{ severity }}_alarm_count, 0) as {{ severity }}_alarm_count{{ ',' if not loop.last }}
        {%- endfor %}
    from daily as d
    inner join fleet_span as f using (event_date)
    left join cadence as c using (event_date, satellite_name)
    left join anomaly_counts as a using (event_date, satellite_name)
),

judged as (
    select
        *,
        critical_alarm_count + severe_alarm_count > 0 as has_critical_alarms,
        warning_alarm_count + distress_alarm_count > 0 as has_warning_alarms,
        coverage_ratio < {{ var('health_coverage_critical') }} as has_critical_coverage,
        outlier_share > {{ var('health_max_outlier_share') }} as has_outliers,
        coverage_ratio < {{ var('health_coverage_degraded') }} as has_low_coverage,
        coverage_ratio is null as has_unknown_coverage,
        max_depth_of_discharge_pct > {{ var('health_max_depth_of_discharge_pct') }} as has_deep_discharge
    from measured
)

select
    event_date,
    satellite_name,
    reading_count,
    expected_reading_count,
    coverage_ratio,
    median_interval_s,
    first_reading_at,
    last_reading_at,
    battery_min_pct,
    battery_avg_pct,
    battery_max_pct,
    max_depth_of_discharge_pct,
    temp_min_c,
    temp_max_c,
    temp_range_c,
    altitude_avg_km,
    altitude_drift_km,
    anomaly_count,
    range_violation_count,
    statistical_outlier_count,
    outlier_share,
    case
        when has_critical_alarms or has_critical_coverage then 'critical'
        when has_warning_alarms or has_outliers or has_low_coverage or has_unknown_coverage or has_deep_discharge
            then 'degraded'
        else 'ok'
    end as health_status,
    concat_ws(
        '; ',
        case
            when has_critical_alarms
                then concat_ws(
                    ' and ',
                    case when critical_alarm_count > 0 then critical_alarm_count || ' critical' end,
                    case when severe_alarm_count > 0 then severe_alarm_count || ' severe' end
                ) || ' limit alarm(s)'
        end,
        case
            when has_warning_alarms
                then concat_ws(
                    ' and ',
                    case when warning_alarm_count > 0 then warning_alarm_count || ' warning' end,
                    case when distress_alarm_count > 0 then distress_alarm_count || ' distress' end
                ) || ' limit alarm(s)'
        end,
        case
            when has_outliers
                then printf('%d statistical outlier(s), %.1f%% of readings', statistical_outlier_count, 100 * outlier_share)
        end,
        case
            when has_low_coverage
                then printf('coverage %.1f%% (%d of %d expected readings)', 100 * coverage_ratio, reading_count, expected_reading_count)
        end,
        case when has_unknown_coverage then 'coverage unknown: fewer than two readings' end,
        case when has_deep_discharge then printf('battery discharged to %.1f%%', battery_min_pct) end
    ) as status_reasons,
    {%- for severity in alarm_severities() %}
    {{ severity }}_alarm_count{{ ',' if not loop.last }}
    {%- endfor %}
from judged
