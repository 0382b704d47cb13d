{#- What each rover drove each sol, from its MMGIS traverse.

    A waypoint is identified by the rover motion counter (site, drive); bronze holds one row per waypoint per
    fetch of the traverse, and the latest fetch of each waypoint wins. The sol's first and last waypoints are
    its lowest and highest (site, drive).
    geodesic_m: sum of segment_m, satlake's geodesic from the previous waypoint on the Mars ellipsoid (the
    previous waypoint may be the last of an earlier sol, so the sols' sums add up to the whole traverse; null
    when the sol's only waypoint is the traverse's first).
    published_m: sum of MMGIS's own dist_m. total_m: MMGIS's odometer (dist_total_m) at the sol's end.
    Sums add exact decimals (micrometres), so a rebuild is bit-identical whatever order DuckDB adds rows in. -#}
{{ assert_object_store_credentials('bronze/mars_waypoints') }}

with fetched as (
    select
        *,
        row_number() over (
            partition by rover_name, site, drive
            order by fetched_at desc, response_id desc
        ) as fetch_rank
    from {{ source('bronze', 'mars_waypoints') }}
),

waypoints as (
    select
        cast(rover_name as varchar) as rover_name,
        cast(sol as integer) as sol,
        cast(site as integer) as site,
        cast(drive as integer) as drive,
        cast(segment_m as double) as segment_m,
        cast(dist_m as double) as dist_m,
        cast(dist_total_m as double) as dist_total_m,
        row_number() over (partition by rover_name, sol order by site, drive) as from_start,
        row_number() over (partition by rover_name, sol order by site desc, drive desc) as from_end
    from fetched
    where fetch_rank = 1
)

select
    rover_name,
    sol,
    count(*) as waypoints,
    any_value(site) filter (where from_start = 1) as start_site,
    any_value(drive) filter (where from_start = 1) as start_drive,
    any_value(site) filter (where from_end = 1) as end_site,
    any_value(drive) filter (where from_end = 1) as end_drive,
    cast(sum(cast(segment_m as decimal(18, 6))) as double) as geodesic_m,
    cast(sum(cast(dist_m as decimal(18, 6))) as double) as published_m,
    max(dist_total_m) as total_m
from waypoints
group by rover_name, sol
