{#- Photos per rover, camera and sol, counted from silver (each photo once). earth_date is the sol's Earth date
    as the photos give it (the earliest, should the API ever disagree with itself). -#}
select
    rover_name,
    camera_name,
    sol,
    min(earth_date) as earth_date,
    count(*) as photos
from {{ ref('mars_photos') }}
group by rover_name, camera_name, sol
