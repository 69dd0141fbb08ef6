"""The staff blueprint; its routes live in the modules ``scheduler.staff.views`` imports."""

from flask import Blueprint

bp = Blueprint("staff", __name__, url_prefix="/staff")
