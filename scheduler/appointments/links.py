"""Manage links: signed, expiring, revocable, bound to one appointment.

The token is the appointment's ``manage_nonce``, timestamped and signed; the
URL carries the reference, and the nonce must be that booking's own, so a
token can never open a different booking. Replacing the nonce revokes the
links already sent. Tokens are short (about 50 characters) because they go
out in text messages, where every character counts.

Links issued before November 2026 signed a JSON object of reference and
nonce; they stay valid until they expire.
"""

from __future__ import annotations

import hmac

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import inspect, select

from scheduler.extensions import db
from scheduler.models import Appointment, AppointmentStatus
from scheduler.urls import public_url

SALT = "scheduler.manage-link"  # the earlier JSON tokens
TOKEN_SALT = "scheduler.manage-token"


class ManageLinkError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # invalid, expired or stale


def _secret_key() -> str | bytes:
    key = current_app.secret_key
    if key is None:  # create_app always sets one
        raise RuntimeError("the app has no SECRET_KEY: manage links cannot be signed")
    return key


def _signer() -> TimestampSigner:
    return TimestampSigner(_secret_key(), salt=TOKEN_SALT)


def _json_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_secret_key(), salt=SALT)


def manage_token(appt: Appointment) -> str:
    """Signed once per loaded appointment: a booking's texts and its answer carry one link."""
    memo = inspect(appt).info
    signed_for = (current_app.secret_key, appt.manage_nonce)
    if memo.get("manage_token_for") != signed_for:
        memo["manage_token"] = _signer().sign(appt.manage_nonce).decode()
        memo["manage_token_for"] = signed_for
    token: str = memo["manage_token"]
    return token


def _nonce_of(reference: str, token: str, max_age: int) -> str:
    """The nonce a token vouches for; raises ManageLinkError."""
    try:
        return _signer().unsign(token, max_age=max_age).decode()
    except SignatureExpired:
        raise ManageLinkError("expired") from None
    except BadSignature:
        pass
    try:
        data = _json_serializer().loads(token, max_age=max_age)
    except SignatureExpired:
        raise ManageLinkError("expired") from None
    except BadSignature:
        raise ManageLinkError("invalid") from None
    if not isinstance(data, dict) or data.get("r") != reference:
        raise ManageLinkError("invalid")
    return str(data.get("n"))


def manage_url(appt: Appointment, token: str | None = None) -> str:
    return public_url("booking.manage", reference=appt.reference, token=token or manage_token(appt))


def appointment_for_link(reference: str, token: str) -> Appointment:
    """The appointment a manage link opens, or ManageLinkError saying why not."""
    max_age = current_app.config["MANAGE_LINK_MAX_AGE_DAYS"] * 86400
    nonce = _nonce_of(reference, token, max_age)
    appt = db.session.scalar(select(Appointment).where(Appointment.reference == reference))
    if appt is None or not hmac.compare_digest(nonce, appt.manage_nonce):
        raise ManageLinkError("invalid")
    if appt.status == AppointmentStatus.RESCHEDULED:
        raise ManageLinkError("stale")
    return appt
