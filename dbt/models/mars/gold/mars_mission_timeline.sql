{#- Per rover, one row per sol that has photos or a drive: what the rover photographed and how far it went.

    photos, cameras: the photos satlake holds for the sol (silver.mars_photos) and how many cameras took them.
    manifest_photos: how many photos the API's latest manifest lists for the sol (null when it lists none), so
    photos < manifest_photos shows a sol fetched only in part.
    driven_m: the sol's geodesic drive (gold.mars_drive_per_sol.geodesic_m); 0 on a sol without waypoints when
    the rover has a traverse; null for a rover without one (MMGIS publishes traverses for Curiosity and
    Perseverance only). cumulative_m: running total of driven_m over the rover's sols.
    earth_date: from the photos, else from the manifest; null for a drive-only sol the manifest does not list. -#}
{{ assert_object_store_credentials('bronze/mars_manifests') }}

with photo_sols as (
    select
        rover_name,
        sol,
        min(earth_date) as earth_date,
        count(*) as photos,
        count(distinct camera_name) as cameras
    from {{ ref('mars_photos') }}
    group by rover_name, sol
),

drive_sols as (
    select rover_name, sol, coalesce(geodesic_m, 0.0) as driven_m
    from {{ ref('mars_drive_per_sol') }}
),

rovers_with_traverse as (
    select distinct rover_name
    from drive_sols
),

manifest_sols as (
    select
        cast(rover_name as varchar) as rover_name,
        cast(sol as integer) as sol,
        cast(earth_date as date) as earth_date,
        cast(total_photos as bigint) as total_photos,
        row_number() over (partition by rover_name, sol order by fetched_at desc, response_id desc) as fetch_rank
    from {{ source('bronze', 'mars_manifests') }}
),

sols as (
    select rover_name, sol from photo_sols
    union
    select rover_name, sol from drive_sols
),

timeline as (
    select
        s.rover_name,
        s.sol,
        coalesce(p.earth_date, m.earth_date) as earth_date,
        coalesce(p.photos, 0) as photos,
        coalesce(p.cameras, 0) as cameras,
        case
            when d.driven_m is not null then d.driven_m
            when t.rover_name is not null then 0.0
        end as driven_m,
        m.total_photos as manifest_photos
    from sols as s
    left join photo_sols as p using (rover_name, sol)
    left join drive_sols as d using (rover_name, sol)
    left join rovers_with_traverse as t on t.rover_name = s.rover_name
    left join manifest_sols as m on m.rover_name = s.rover_name and m.sol = s.sol and m.fetch_rank = 1
)

select
    rover_name,
    sol,
    earth_date,
    photos,
    cameras,
    driven_m,
    sum(driven_m) over (
        partition by rover_name order by sol rows between unbounded preceding and current row
    ) as cumulative_m,
    manifest_photos
from timeline
