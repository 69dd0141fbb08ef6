from flask import Blueprint

bp = Blueprint("booking", __name__)

from scheduler.booking import views  # noqa: E402,F401  (registers the routes on bp)
