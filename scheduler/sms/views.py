"""Twilio's webhooks: incoming texts and delivery reports.

CSRF does not apply here; Twilio's signature does. It is checked against the
URL Twilio was given, built from PUBLIC_BASE_URL, so it holds behind a proxy.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from scheduler.appointments.validation import accepted_phone
from scheduler.models import utcnow
from scheduler.sms.replies import Inbound, apply_status_callback, handle_inbound

bp = Blueprint("sms", __name__, url_prefix="/sms")

MAX_BODY = 1600  # Twilio's longest text
SID_LENGTH = 64


def url_twilio_called() -> str:
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    query = request.query_string.decode("latin-1")
    return base + request.path + (f"?{query}" if query else "")


def require_twilio_signature() -> None:
    token = current_app.config["TWILIO_AUTH_TOKEN"]
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token:
        current_app.logger.warning("refused a webhook: TWILIO_AUTH_TOKEN is not set")
        abort(403, description="Webhooks need TWILIO_AUTH_TOKEN to be set.")
    if not signature or not RequestValidator(token).validate(
        url_twilio_called(), request.form, signature
    ):
        abort(403, description="The request signature is not valid.")


def form_field(name: str, max_length: int, required: bool = True) -> str:
    value = request.form.get(name, "")
    if (required and not value) or len(value) > max_length:
        abort(400, description=f"{name} is missing or too long.")
    return value


def twiml(reply: str | None) -> Response:
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return Response(str(response), mimetype="application/xml")


@bp.post("/inbound")
def inbound() -> Response:
    require_twilio_signature()
    sender = form_field("From", 20)  # E.164, as Twilio sends it
    accepted = accepted_phone(sender)
    message = Inbound(
        sid=form_field("MessageSid", SID_LENGTH),
        from_phone=accepted or sender,
        to_phone=form_field("To", 20, required=False),
        body=form_field("Body", MAX_BODY, required=False),
        sender_accepted=accepted is not None,
    )
    return twiml(handle_inbound(message, utcnow()))


@bp.post("/status")
def status_callback() -> tuple[str, int]:
    require_twilio_signature()
    code = request.form.get("ErrorCode", "")
    apply_status_callback(
        sid=form_field("MessageSid", SID_LENGTH),
        provider_status=form_field("MessageStatus", 20),
        error_code=int(code) if code.isdigit() and len(code) < 9 else None,
        now=utcnow(),
    )
    return "", 204
