"""Text messages: the outbox and its dispatcher, and Twilio's webhooks."""

from flask import Blueprint

bp = Blueprint("sms", __name__, url_prefix="/sms")

from scheduler.sms import views  # noqa: E402,F401  (registers the routes on bp)
