"""Manage links: signed, expiring, revocable, bound to one appointment.

The token signs the appointment's reference and its ``manage_nonce``; the URL
carries the reference too, so a token can never open a different booking.
"""

from __future__ import annotations

import hmac

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from scheduler.extensions import db
from scheduler.models import Appointment, AppointmentStatus
from scheduler.urls import public_url

SALT = "scheduler.manage-link"


class ManageLinkError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # invalid, expired or stale


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=SALT)  # type: ignore[arg-type]


def manage_token(appt: Appointment) -> str:
    return _serializer().dumps({"r": appt.reference, "n": appt.manage_nonce})


def manage_url(appt: Appointment, token: str | None = None) -> str:
    return public_url("booking.manage", reference=appt.reference, token=token or manage_token(appt))


def appointment_for_link(reference: str, token: str) -> Appointment:
    """The appointment a manage link opens, or ManageLinkError saying why not."""
    max_age = current_app.config["MANAGE_LINK_MAX_AGE_DAYS"] * 86400
    try:
        data = _serializer().loads(token, max_age=max_age)
    except SignatureExpired:
        raise ManageLinkError("expired") from None
    except BadSignature:
        raise ManageLinkError("invalid") from None
    if not isinstance(data, dict) or data.get("r") != reference:
        raise ManageLinkError("invalid")
    appt = db.session.scalar(select(Appointment).where(Appointment.reference == reference))
    if appt is None or not hmac.compare_digest(str(data.get("n")), appt.manage_nonce):
        raise ManageLinkError("invalid")
    if appt.status == AppointmentStatus.RESCHEDULED:
        raise ManageLinkError("stale")
    return appt
