"""The rovers satlake knows, with what the API and MMGIS call them and where each landed (planetocentric
longitude east and latitude, degrees, on Mars)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

SOL_KEY_DIGITS = 5  # sol partition keys sort as numbers: "01000" < "04102"


@dataclass(frozen=True, slots=True)
class Rover:
    name: str  # the API's path segment, lower case
    display_name: str
    mmgis_mission: str | None  # MMGIS publishes waypoints for M20 and MSL only
    landing_date: date
    landing_lon: float
    landing_lat: float


ROVERS: dict[str, Rover] = {
    rover.name: rover
    for rover in (
        Rover("curiosity", "Curiosity", "MSL", date(2012, 8, 6), 137.4417, -4.5895),
        Rover("opportunity", "Opportunity", None, date(2004, 1, 25), 354.4734 - 360.0, -1.9462),
        Rover("perseverance", "Perseverance", "M20", date(2021, 2, 18), 77.4509, 18.4447),
        Rover("spirit", "Spirit", None, date(2004, 1, 4), 175.4726, -14.5684),
    )
}


class UnknownRover(ValueError):
    """A rover name the API does not serve."""


def rover_named(name: str) -> Rover:
    rover = ROVERS.get(name.strip().lower())
    if rover is None:
        raise UnknownRover(f"unknown rover {name!r}: the Mars rover photo API serves {', '.join(sorted(ROVERS))}")
    return rover


def sol_key(sol: int) -> str:
    """The partition key of a sol: zero-padded so keys sort as sols do."""
    if sol < 0 or sol >= 10**SOL_KEY_DIGITS:
        raise ValueError(f"sol {sol} is out of range (0..{10**SOL_KEY_DIGITS - 1})")
    return f"{sol:0{SOL_KEY_DIGITS}d}"
