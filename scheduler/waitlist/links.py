"""Signed links of the waitlist: an offer's ``/offer/<token>`` and an entry's own page.

Like manage links (``appointments/links.py``): the token signs a nonce stored
with the row, so a token opens that one row only, and a new nonce revokes it.
"""

from __future__ import annotations

import hmac

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from sqlalchemy import select

from scheduler.appointments.links import ManageLinkError
from scheduler.extensions import db
from scheduler.models import WaitlistEntry, WaitlistOffer
from scheduler.urls import public_url

OFFER_SALT = "scheduler.waitlist-offer"
ENTRY_SALT = "scheduler.waitlist-entry"
# An offer's link outlives its offer by this much, so a late click is told what happened.
OFFER_LINK_MAX_AGE_DAYS = 30


def _signer(salt: str) -> TimestampSigner:
    key = current_app.secret_key
    if key is None:
        raise RuntimeError("the app has no SECRET_KEY: waitlist links cannot be signed")
    return TimestampSigner(key, salt=salt)


def offer_token(offer: WaitlistOffer) -> str:
    return _signer(OFFER_SALT).sign(f"{offer.id}.{offer.nonce}").decode()


def offer_url(offer: WaitlistOffer) -> str:
    return public_url("waitlist.offer", token=offer_token(offer))


def offer_for_token(token: str) -> WaitlistOffer:
    """The offer a link opens, or ManageLinkError (invalid or expired)."""
    try:
        signed = _signer(OFFER_SALT).unsign(token, max_age=OFFER_LINK_MAX_AGE_DAYS * 86400)
    except SignatureExpired:
        raise ManageLinkError("expired") from None
    except BadSignature:
        raise ManageLinkError("invalid") from None
    offer_id, _, nonce = signed.decode().partition(".")
    if not offer_id.isdigit() or len(offer_id) > 12:
        raise ManageLinkError("invalid")
    offer = db.session.get(WaitlistOffer, int(offer_id))
    if offer is None or not hmac.compare_digest(nonce, offer.nonce):
        raise ManageLinkError("invalid")
    return offer


def entry_token(entry: WaitlistEntry) -> str:
    return _signer(ENTRY_SALT).sign(entry.manage_nonce).decode()


def entry_url(entry: WaitlistEntry) -> str:
    return public_url("waitlist.entry", reference=entry.reference, token=entry_token(entry))


def entry_for_link(reference: str, token: str) -> WaitlistEntry:
    """The entry a link opens, or ManageLinkError saying why not."""
    max_age = current_app.config["MANAGE_LINK_MAX_AGE_DAYS"] * 86400
    try:
        nonce = _signer(ENTRY_SALT).unsign(token, max_age=max_age).decode()
    except SignatureExpired:
        raise ManageLinkError("expired") from None
    except BadSignature:
        raise ManageLinkError("invalid") from None
    entry = db.session.scalar(select(WaitlistEntry).where(WaitlistEntry.reference == reference))
    if entry is None or not hmac.compare_digest(nonce, entry.manage_nonce):
        raise ManageLinkError("invalid")
    return entry
