"""The unsubscribe link every email carries: a GET shows a page that asks, a POST unsubscribes.

Mail apps that offer "Unsubscribe" POST ``List-Unsubscribe=One-Click`` to the
same address (RFC 8058) with no page and no cookie: the signed link is the
permission, so the POST needs no CSRF token (and a forged one cannot guess it).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, abort, render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.i18n import use_patient_language
from scheduler.mail.messages import unsubscribe_signature
from scheduler.mail.outbox import unsubscribe as unsubscribe_address
from scheduler.mail.outbox import unsubscribed_at
from scheduler.models import (
    Appointment,
    Channel,
    OutboundMessage,
    WaitlistEntry,
    WaitlistOffer,
    utcnow,
)

bp = Blueprint("mail", __name__)


def _addresses_of_reference(reference: str) -> tuple[str, set[str]] | None:
    """The patient's language and the addresses emailed about this reference: an
    appointment's, or a waitlist request's (its offers); None when it is neither."""
    appt = db.session.scalar(select(Appointment).where(Appointment.reference == reference))
    if appt is not None:
        about = OutboundMessage.appointment_id == appt.id
        patient, language = appt.patient, appt.patient.language
    else:
        entry = db.session.scalar(select(WaitlistEntry).where(WaitlistEntry.reference == reference))
        if entry is None:
            return None
        offers = select(WaitlistOffer.id).where(WaitlistOffer.entry_id == entry.id)
        about = OutboundMessage.waitlist_offer_id.in_(offers)
        patient, language = entry.patient, entry.language
    emailed = db.session.scalars(
        select(OutboundMessage.to_email)
        .where(about, OutboundMessage.channel == Channel.EMAIL)
        .distinct()
    ).all()
    candidates = {address for address in emailed if address}
    if patient.email:
        candidates.add(patient.email.strip().lower())
    return language, candidates


def _address_of_link(reference: str, token: str) -> tuple[str, str]:
    """The patient's language and the address the link was made for; 404 for any other."""
    if len(reference) > 20 or len(token) != 32:
        abort(404)
    found = _addresses_of_reference(reference)
    if found is None:
        abort(404)
    language, candidates = found
    for address in sorted(candidates):
        if hmac.compare_digest(unsubscribe_signature(reference, address), token):
            return language, address
    abort(404)


def masked(address: str) -> str:
    """Enough of the address to recognise it, not enough to read it off a shared screen."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}{'•' * min(max(len(local) - 1, 1), 6)}@{domain}"


@bp.route("/email/unsubscribe/<reference>/<token>", methods=["GET", "POST"])
def unsubscribe(reference: str, token: str) -> str | Response:
    language, address = _address_of_link(reference, token)
    use_patient_language(language)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    if request.method == "POST":
        with unit_of_work():
            unsubscribe_address(address, utcnow())
        if one_click:
            return Response("Unsubscribed.\n", mimetype="text/plain")
        return render_template("mail/unsubscribed.html", address=masked(address))
    return render_template(
        "mail/unsubscribe.html",
        address=masked(address),
        already=unsubscribed_at(address) is not None,
    )
