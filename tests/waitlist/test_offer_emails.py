"""Waitlist offers by email: to patients who gave an address (with or without texts), through
the one outbox to the suite's SMTP server, withdrawn with the texts, never to an unsubscribed
address or over the per-address cap, in the patient's language."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.mail.outbox import unsubscribe
from scheduler.models import (
    Appointment,
    MessageStatus,
    OfferOutcome,
    OutboundMessage,
    Slot,
    WaitlistEntry,
    WaitlistStatus,
    utcnow,
)
from scheduler.sms.backends import ConsoleBackend
from scheduler.sms.dispatch import Dispatcher
from scheduler.waitlist.offers import decline_offer, run_offers
from tests.conftest import Clock, hidden_fields
from tests.factories import CHICAGO, cancel, make_appointment, make_location, make_slot
from tests.mail.conftest import smtp_settings
from tests.smtp_server import SmtpServer
from tests.waitlist.conftest import join, offer_texts, offers_of

pytestmark = pytest.mark.clock_sensitive  # sending hours, the minimum notice, expiry

BASE = "https://book.example.test"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def app_config(smtp: SmtpServer) -> dict[str, Any]:
    return smtp_settings(smtp)


@pytest.fixture
def dispatcher(app: Flask) -> Iterator[Dispatcher]:
    """Texts to the console, emails to the suite's SMTP server."""
    with Dispatcher(app, backend=ConsoleBackend(io.StringIO())) as dispatcher:
        yield dispatcher


def freed_place(location: Any = None, days_ahead: int = 3) -> tuple[Slot, Appointment]:
    slot = make_slot(location or make_location(), days_ahead=days_ahead, capacity=1)
    return slot, make_appointment(slot)


def emails() -> list[OutboundMessage]:
    return [m for m in offer_texts() if m.channel == "email"]


def texts() -> list[OutboundMessage]:
    return [m for m in offer_texts() if m.channel == "sms"]


def plain_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def offer_path(text: str) -> str:
    found = re.search(rf"{re.escape(BASE)}(/offer/[A-Za-z0-9._-]+)", text)
    assert found is not None, text
    return found.group(1)


def test_a_patient_who_gave_only_an_email_is_offered_the_place_by_email_and_takes_it(
    app: Flask, client: FlaskClient, clock: Clock, dispatcher: Dispatcher, smtp: SmtpServer
) -> None:
    slot, appt = freed_place()
    entry = join(
        slot.location,
        first_name="Guadalupe",
        sms_consent=False,
        sms_consent_text=None,
        email="Lupe.Flores@Example.com",
    )
    assert (entry.by_text, entry.by_email) == (False, True)
    cancel(appt)
    (offer,) = offers_of(slot.id)
    assert offer.entry_id == entry.id
    assert texts() == []
    (row,) = emails()
    notice = timedelta(minutes=app.config["MIN_NOTICE_MINUTES"])
    assert (row.appointment_id, row.waitlist_offer_id) == (None, offer.id)
    assert (row.kind, row.to_email) == ("waitlist_offer", "lupe.flores@example.com")
    assert row.status == MessageStatus.PENDING
    assert row.due_at == offer.sent_at and row.send_before == slot.starts_at - notice

    report = dispatcher.dispatch_due(utcnow())
    assert report.sent >= 1
    (message,) = [m for m in smtp.messages if "lupe.flores@example.com" in str(m["To"])]
    local = slot.starts_at.astimezone(CHICAGO)
    plain = plain_of(message)
    assert "An earlier time opened at" in str(message["Subject"])
    assert "Guadalupe" in plain and slot.location.name in plain
    assert local.strftime("%B") in plain and str(local.day) in plain  # the long date
    assert "10:00" in plain  # the time
    assert f"holds for {app.config['WAITLIST_OFFER_MINUTES']} minutes" in plain
    # Minimum necessary: no last name, no phone, no birth date.
    assert "Flores" not in plain.replace("lupe.flores", "")
    assert entry.patient.phone not in plain and "1960" not in plain
    assert "given to join a waitlist" in plain
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"/email/unsubscribe/{entry.reference}/" in str(message["List-Unsubscribe"])
    assert message.get_content_type() == "multipart/alternative"
    assert '<a href="https://book.example.test/offer/' in html_part(message)
    assert list(message.iter_attachments()) == []  # no booking yet: no calendar file
    db.session.expire_all()
    assert db.session.get(OutboundMessage, row.id).status == MessageStatus.SENT

    # The link in the email opens the offer, and taking it books the place.
    path = offer_path(plain)
    page = client.get(path)
    assert page.status_code == 200 and "Take this time" in page.get_data(as_text=True)
    taken = client.post(path, data=hidden_fields(page.get_data(as_text=True)))
    assert taken.status_code == 303 and "/manage/" in taken.headers["Location"]
    db.session.expire_all()
    assert db.session.get(Slot, slot.id).booked_count == 1
    booked = db.session.get(WaitlistEntry, entry.id)
    assert booked is not None and booked.status == WaitlistStatus.BOOKED
    new = db.session.get(Appointment, booked.appointment_id)
    assert new is not None and new.slot_id == slot.id and new.patient_id == entry.patient_id


def test_a_patient_with_both_gets_both_and_the_winner_withdraws_the_others_texts_and_emails(
    app: Flask, client: FlaskClient, clock: Clock
) -> None:
    slot, appt = freed_place()
    both = join(slot.location, email="both@example.com")
    other = join(slot.location, email="other@example.com")
    text_only = join(slot.location)
    cancel(appt)
    offers = offers_of(slot.id)
    assert [o.entry_id for o in offers] == [both.id, other.id, text_only.id]
    assert sorted(m.to_phone or "" for m in texts()) == sorted(
        e.patient.phone for e in (both, other, text_only)
    )
    assert sorted(m.to_email or "" for m in emails()) == ["both@example.com", "other@example.com"]
    assert all(m.status == MessageStatus.PENDING for m in offer_texts())

    # The second patient takes it through the link: every other pending message is withdrawn.
    path = offer_path(next(m.body for m in emails() if m.to_email == "other@example.com"))
    page = client.get(path).get_data(as_text=True)
    assert client.post(path, data=hidden_fields(page)).status_code == 303
    by_offer = {(m.waitlist_offer_id, m.channel): m for m in offer_texts()}
    for offer in offers:
        for channel in ("sms", "email"):
            message = by_offer.get((offer.id, channel))
            if message is None:
                continue
            assert message.status == MessageStatus.CANCELLED, (offer.entry_id, channel)
    reasons = {m.status_reason for m in offer_texts()}
    assert reasons == {"offer_taken", "offer_accepted"}
    assert [o.outcome for o in offers_of(slot.id)] == [
        OfferOutcome.TAKEN,
        OfferOutcome.ACCEPTED,
        OfferOutcome.TAKEN,
    ]


def test_no_offer_email_to_an_unsubscribed_address(app: Flask, clock: Clock) -> None:
    """Email only and unsubscribed: no offer at all. With texts too: the text only."""
    slot, appt = freed_place()
    gone = join(slot.location, sms_consent=False, sms_consent_text=None, email="gone@example.com")
    texted = join(slot.location, email="gone.too@example.com")
    with unit_of_work():
        unsubscribe("GONE@example.com", utcnow())
        unsubscribe("gone.too@example.com", utcnow())
    cancel(appt)
    assert [o.entry_id for o in offers_of(slot.id)] == [texted.id]
    assert emails() == []
    assert [m.to_phone for m in texts()] == [texted.patient.phone]
    assert gone.id not in {o.entry_id for o in offers_of(slot.id)}


def test_no_offer_email_over_the_address_daily_cap(app: Flask, clock: Clock) -> None:
    app.config["MAIL_MAX_PER_ADDRESS_PER_DAY"] = 0
    slot, appt = freed_place()
    join(slot.location, sms_consent=False, sms_consent_text=None, email="full@example.com")
    texted = join(slot.location, email="full.too@example.com")
    cancel(appt)
    assert [o.entry_id for o in offers_of(slot.id)] == [texted.id]
    assert emails() == [] and len(texts()) == 1


def test_an_offer_email_in_spanish_and_its_unsubscribe_link(
    app: Flask, client: FlaskClient, clock: Clock, dispatcher: Dispatcher, smtp: SmtpServer
) -> None:
    slot, appt = freed_place()
    entry = join(
        slot.location,
        language="es",
        sms_consent=False,
        sms_consent_text=None,
        email="rosa@example.com",
    )
    cancel(appt)
    dispatcher.dispatch_due(utcnow())
    (message,) = [m for m in smtp.messages if "rosa@example.com" in str(m["To"])]
    plain = plain_of(message)
    assert str(message["Subject"]).startswith("Hay una hora antes en")
    assert message["Content-Language"] == "es"
    assert "Esta oferta dura 30 minutos" in plain and "Para tomarla:" in plain
    assert "para entrar en una lista de espera" in plain
    months = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto")
    months += ("septiembre", "octubre", "noviembre", "diciembre")
    assert any(month in plain for month in months)
    # The offer page opens in Spanish.
    page = client.get(offer_path(plain)).get_data(as_text=True)
    assert 'lang="es"' in page

    # The unsubscribe link (a waitlist request's, not an appointment's) asks, then stops
    # any offer email still waiting.
    link = re.fullmatch(r"<https://book\.example\.test([^>]+)>", str(message["List-Unsubscribe"]))
    assert link is not None
    asked = client.get(link.group(1)).get_data(as_text=True)
    assert "¿Dejar de recibir nuestros correos en r" in asked
    assert decline_offer(offers_of(slot.id)[0].id, utcnow())  # "no, thanks": waiting again
    second, appt2 = freed_place(slot.location, days_ahead=4)
    cancel(appt2)
    pending = [m for m in emails() if m.status == MessageStatus.PENDING]
    assert [m.waitlist_offer_id for m in pending] == [offers_of(second.id)[0].id]
    answer = client.post(link.group(1), data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    (stopped,) = [m for m in emails() if m.waitlist_offer_id == offers_of(second.id)[0].id]
    assert (stopped.status, stopped.status_reason) == ("suppressed", "unsubscribed")
    forged = link.group(1).rsplit("/", 1)[0] + "/" + "0" * 32
    assert client.get(forged).status_code == 404
    assert entry.reference in link.group(1)


def test_an_offer_that_runs_out_withdraws_its_email_and_the_next_patient_is_emailed(
    app: Flask, clock: Clock
) -> None:
    app.config["WAITLIST_BATCH"] = 1
    slot, appt = freed_place()
    first = join(slot.location, sms_consent=False, sms_consent_text=None, email="a@example.com")
    second = join(slot.location, sms_consent=False, sms_consent_text=None, email="b@example.com")
    cancel(appt)
    assert [o.entry_id for o in offers_of(slot.id)] == [first.id]
    clock.shift(timedelta(minutes=app.config["WAITLIST_OFFER_MINUTES"], seconds=1))
    result = run_offers(utcnow())
    assert (result.expired, result.sent) == (1, 1)
    rows = {m.to_email: m for m in emails()}
    assert (rows["a@example.com"].status, rows["a@example.com"].status_reason) == (
        "cancelled",
        "offer_expired",
    )
    assert rows["b@example.com"].status == MessageStatus.PENDING
    assert offers_of(slot.id)[1].entry_id == second.id


@pytest.mark.clock(datetime(2027, 4, 13, 22, 30, tzinfo=CHICAGO))
def test_an_offer_email_made_at_night_waits_for_eight_in_the_morning(
    app: Flask, clock: Clock, dispatcher: Dispatcher, smtp: SmtpServer
) -> None:
    slot, appt = freed_place(days_ahead=2)
    join(slot.location, sms_consent=False, sms_consent_text=None, email="night@example.com")
    cancel(appt)
    (offer,) = offers_of(slot.id)
    morning = datetime(2027, 4, 14, 8, 0, tzinfo=CHICAGO)
    (email,) = emails()
    assert offer.sent_at == morning and email.due_at == morning
    assert dispatcher.dispatch_due(morning.astimezone(UTC) - timedelta(minutes=1)).sent == 0
    assert not [m for m in smtp.messages if "night@example.com" in str(m["To"])]
    dispatcher.dispatch_due(morning.astimezone(UTC))
    assert [m for m in smtp.messages if "night@example.com" in str(m["To"])]
