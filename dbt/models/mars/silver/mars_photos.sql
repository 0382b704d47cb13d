{#- One row per photo: bronze/mars_photos holds a row per photo per fetch of its page (a page re-fetched after
    the API corrected a caption, or overlapping fetches); the latest fetch wins. Ties on fetched_at (one
    response listing a photo twice) go to the greatest response_id, then page, so the choice never depends on
    the order DuckDB scans the files in. -#}
{{ assert_object_store_credentials('bronze/mars_photos') }}

with ranked as (
    select
        *,
        row_number() over (
            partition by id
            order by fetched_at desc, response_id desc, page desc, img_src
        ) as fetch_rank
    from {{ source('bronze', 'mars_photos') }}
)

select
    cast(id as bigint) as id,
    cast(rover_name as varchar) as rover_name,
    cast(sol as integer) as sol,
    cast(earth_date as date) as earth_date,
    cast(camera_name as varchar) as camera_name,
    cast(camera_full_name as varchar) as camera_full_name,
    cast(img_src as varchar) as img_src,
    cast(fetched_at as timestamptz) as fetched_at
from ranked
where fetch_rank = 1
