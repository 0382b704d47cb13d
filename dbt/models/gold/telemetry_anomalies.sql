{#- One row per anomalous reading per measure and kind.

    range_violation: a limit alarm. Bronze judged the value against the mission's limits file and found it
    outside a band; severity (watch, warning, distress, critical, severe) and limit_value say which band and
    which end. The limits live in one place, the limits file, not in this project.

    statistical_outlier: a Hampel identifier. A reading is compared with the median of its neighbourhood, the
    var('outlier_neighbour_readings') readings either side of it and itself, of the same satellite, measure and
    UTC day. The residual is scaled by the day's median absolute residual (x 1.4826, which estimates one
    standard deviation for normal noise), but never by less than var('outlier_scale_floor') for the measure;
    |robust_z| above var('outlier_robust_z_threshold') is an outlier.
    Why not a z-score or MAD against the whole day: the signals switch regime every orbit (sunlit vs eclipse
    temperature, battery charging vs discharging, sensor2 following the sun), so day-wide statistics flag every
    reading of the minority regime: on a simulated demo run (33,876 readings) a day-wide MAD score flagged
    6,189 values, this flags 79, the injected excursions that stand out from the noise. The neighbourhood
    median follows the regime (a median filter keeps steps) and moves only with trends, not with single spikes. The floor keeps smooth series, whose median residual is ~0, from turning rounding noise into outliers.
    Everything is per day, so a backfill in one invocation gives the same anomalies as one run per day. -#}
{%- set neighbours = var('outlier_neighbour_readings') | int %}

with readings as (
    select *
    from {{ ref('telemetry_clean') }}
    where {{ in_window() }}
),

outlier_scale_floors as (
    select * from {{ outlier_scale_floor_values() }} as floors (measure, scale_floor)
),

measurements as (
    unpivot (select event_date, satellite_name, timestamp_ns, event_time, {{ telemetry_measures() | join(', ') }} from readings)
    on {{ telemetry_measures() | join(', ') }}
    into name measure value value
),

limit_alarms as (
    unpivot (
        select
            event_date, satellite_name, timestamp_ns, event_time,
            {%- for measure in telemetry_measures() %}
            {{ measure }}, {{ measure }}_alarm, {{ measure }}_alarm_limit{{ ',' if not loop.last }}
            {%- endfor %}
        from readings
    )
    on {% for measure in telemetry_measures() -%}
        ({{ measure }}, {{ measure }}_alarm, {{ measure }}_alarm_limit) as {{ measure }}{{ ', ' if not loop.last }}
    {%- endfor %}
    into name measure value value, severity, limit_value
),

range_violations as (
    select
        event_date,
        satellite_name,
        timestamp_ns,
        event_time,
        measure,
        'range_violation' as kind,
        value,
        limit_value,
        cast(null as double) as expected_value,
        cast(null as double) as robust_z,
        printf(
            '%s %.3f is %s the %s limit %.3f', measure, value,
            case when value < limit_value then 'below' else 'above' end, severity, limit_value
        ) as reason,
        severity
    from limit_alarms
    where severity is not null
),

neighbourhoods as (
    select
        *,
        median(value) over (
            partition by event_date, satellite_name, measure
            order by timestamp_ns
            rows between {{ neighbours }} preceding and {{ neighbours }} following
        ) as expected_value,
        count(*) over (partition by event_date, satellite_name, measure) as day_reading_count
    from measurements
),

residuals as (
    select *, value - expected_value as residual
    from neighbourhoods
),

daily_spread as (
    select
        event_date,
        satellite_name,
        measure,
        median(abs(residual)) as median_abs_residual
    from residuals
    group by event_date, satellite_name, measure
),

scored as (
    select
        r.*,
        r.residual / greatest(1.4826 * d.median_abs_residual, f.scale_floor) as robust_z
    from residuals as r
    inner join daily_spread as d using (event_date, satellite_name, measure)
    inner join outlier_scale_floors as f on r.measure = f.measure
    where r.day_reading_count >= {{ 2 * neighbours + 1 }}
),

statistical_outliers as (
    select
        event_date,
        satellite_name,
        timestamp_ns,
        event_time,
        measure,
        'statistical_outlier' as kind,
        value,
        cast(null as double) as limit_value,
        expected_value,
        robust_z,
        printf(
            '%s %.3f is %.1f robust standard deviations %s %.3f, the median of its %d neighbouring readings (threshold %.1f)',
            measure, value, abs(robust_z), case when robust_z > 0 then 'above' else 'below' end,
            expected_value, {{ 2 * neighbours + 1 }}, {{ var('outlier_robust_z_threshold') }}
        ) as reason,
        cast(null as varchar) as severity
    from scored
    where abs(robust_z) > {{ var('outlier_robust_z_threshold') }}
)

select * from range_violations
union all by name
select * from statistical_outliers
