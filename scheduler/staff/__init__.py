"""The schedulers' workspace: calendars, availability, appointments, texts, audit."""

from flask import Blueprint

bp = Blueprint("staff", __name__, url_prefix="/staff")

from scheduler.staff import (  # noqa: E402,F401  (register the routes on bp)
    access,
    views,
)
