{#- One row per reading: bronze telemetry for the window, deduplicated on (satellite_name, timestamp_ns).
    When the log delivered a reading more than once, the copy earliest in the log (lowest topic, partition,
    offset) wins, so the choice does not depend on the order bronze files happen to be scanned in. Every
    reading keeps the limit alarms bronze gave it (severity and limit crossed per measure). -#}
{{ assert_object_store_credentials() }}

with bronze as (
    select *
    from {{ source('bronze', 'telemetry') }}
    where {{ in_window() }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by satellite_name, timestamp_ns
            order by topic, "partition", "offset"
        ) as copy_rank,
        count(*) over (partition by satellite_name, timestamp_ns) as copies_received
    from bronze
)

select
    cast(event_date as date) as event_date,
    cast(satellite_name as varchar) as satellite_name,
    cast(timestamp_ns as bigint) as timestamp_ns,
    cast(event_time as timestamptz) as event_time,
    date_trunc('hour', cast(event_time as timestamptz)) as event_hour,
    {%- for measure in telemetry_measures() %}
    cast({{ measure }} as double) as {{ measure }},
    {%- endfor %}
    cast(topic as varchar) as source_topic,
    cast("partition" as integer) as source_partition,
    cast("offset" as bigint) as source_offset,
    cast(batch_id as varchar) as source_batch_id,
    cast(received_at as timestamptz) as received_at,
    cast(copies_received as integer) as copies_received,
    {%- for measure in telemetry_measures() %}
    cast({{ measure }}_alarm as varchar) as {{ measure }}_alarm,
    cast({{ measure }}_alarm_limit as double) as {{ measure }}_alarm_limit,
    {%- endfor %}
    cast(alarm_severity as varchar) as alarm_severity,
    cast(limits_version as varchar) as limits_version
from ranked
where copy_rank = 1
