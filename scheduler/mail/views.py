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
from scheduler.models import Appointment, Channel, OutboundMessage, utcnow

bp = Blueprint("mail", __name__)


def _address_of_link(reference: str, token: str) -> tuple[Appointment, str]:
    """The appointment and the address the link was made for; 404 for any other link."""
    if len(reference) > 20 or len(token) != 32:
        abort(404)
    appt = db.session.scalar(select(Appointment).where(Appointment.reference == reference))
    if appt is None:
        abort(404)
    emailed = db.session.scalars(
        select(OutboundMessage.to_email)
        .where(
            OutboundMessage.appointment_id == appt.id,
            OutboundMessage.channel == Channel.EMAIL,
        )
        .distinct()
    ).all()
    candidates = {address for address in emailed if address}
    if appt.patient.email:
        candidates.add(appt.patient.email.strip().lower())
    for address in sorted(candidates):
        if hmac.compare_digest(unsubscribe_signature(reference, address), token):
            return appt, address
    abort(404)


def masked(address: str) -> str:
    """Enough of the address to recognise it, not enough to read it off a shared screen."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}{'•' * min(max(len(local) - 1, 1), 6)}@{domain}"


@bp.route("/email/unsubscribe/<reference>/<token>", methods=["GET", "POST"])
def unsubscribe(reference: str, token: str) -> str | Response:
    appt, address = _address_of_link(reference, token)
    use_patient_language(appt.patient.language)
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
