"""Staff routes, grouped by area; each module registers its routes on the blueprint."""

from scheduler.staff import (  # noqa: F401
    admin_views,
    appointment_views,
    auth_views,
    availability_views,
    calendar_views,
    export_views,
)
