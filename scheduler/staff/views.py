"""The staff blueprint with every route of the workspace; each module registers its own."""

from scheduler.staff import (  # noqa: F401  (each registers its routes on bp)
    access,
    account_views,
    admin_views,
    appointment_views,
    audit_views,
    auth_views,
    availability_views,
    calendar_views,
    export_views,
    inbox_views,
)
from scheduler.staff.blueprint import bp

__all__ = ["bp"]
