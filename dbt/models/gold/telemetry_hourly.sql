{#- Per satellite and UTC hour: how many readings arrived and the spread of every measure. -#}
with readings as (
    select *
    from {{ ref('telemetry_clean') }}
    where {{ in_window() }}
)

select
    event_date,
    satellite_name,
    event_hour,
    count(*) as reading_count,
    min(event_time) as first_reading_at,
    max(event_time) as last_reading_at,
    {%- for measure in telemetry_measures() %}
    min({{ measure }}) as {{ measure }}_min,
    max({{ measure }}) as {{ measure }}_max,
    {{ exact_avg(measure) }} as {{ measure }}_avg,
    {%- endfor %}
    {{ exact_stddev_samp("temp_c") }} as temp_c_stddev,
    arg_min(battery_charge_pct, timestamp_ns) as battery_charge_pct_first,
    arg_max(battery_charge_pct, timestamp_ns) as battery_charge_pct_last
from readings
group by event_date, satellite_name, event_hour
