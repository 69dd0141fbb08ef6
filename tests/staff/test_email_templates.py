"""Admins edit the emails like the texts: subject and body, with a preview of both parts."""

from __future__ import annotations

import html

from flask import Flask
from flask.testing import FlaskClient

from scheduler.models import Location
from tests.conftest import Clock
from tests.factories import book, booking_request, emails_of, make_slot, seeded_clinic
from tests.staff.conftest import post

PATH = "/staff/texts/email_reminder/es"


def test_the_editor_lists_and_previews_the_emails(app: Flask, admin_client: FlaskClient) -> None:
    seeded_clinic()
    listing = admin_client.get("/staff/texts").get_data(as_text=True)
    assert "Email: booking confirmed (with the calendar file)" in listing
    assert "/staff/texts/email_instructions/en" in listing
    page = admin_client.get(PATH).get_data(as_text=True)
    assert "<strong>Subject:</strong> Recordatorio: su consulta en Kerrville" in page
    assert "Hola, Guadalupe:" in page
    assert 'id="preview-html"' in page and 'sandbox=""' in page
    instructions = admin_client.get("/staff/texts/email_instructions/en").get_data(as_text=True)
    assert "- Bring a photo ID and your insurance card." in instructions  # the location's list


def test_the_live_preview_escapes_the_html_part(app: Flask, admin_client: FlaskClient) -> None:
    seeded_clinic()
    body = "Hola <b>{first_name}</b>\n\n<script>alert(1)</script> {manage_url}"
    preview = post(admin_client, PATH + "/preview", {"body": body}).get_json()
    assert preview["ok"] and preview["subject"] == "Hola <b>Guadalupe</b>"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in preview["html"]
    assert "<script>" not in preview["html"]
    assert '<a href="https://book.example.test/manage/' in preview["html"]
    assert post(admin_client, PATH, {"body": body}).status_code == 302  # plain text: allowed
    page = admin_client.get(PATH).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page  # in srcdoc, escaped once more
    assert html.escape("&lt;script&gt;") in page


def test_an_email_template_needs_a_subject_and_known_placeholders(
    app: Flask, admin_client: FlaskClient
) -> None:
    seeded_clinic()
    no_subject = post(admin_client, PATH, {"body": "Hola {first_name}, le esperamos."})
    assert no_subject.status_code == 422
    assert "Write the subject on the first line" in no_subject.get_data(as_text=True)
    unknown = post(admin_client, PATH, {"body": "Hola\n\n{first_name} {date_of_birth}"})
    assert unknown.status_code == 422
    assert "Unknown placeholder {date_of_birth}" in unknown.get_data(as_text=True)


def test_a_saved_email_template_is_used_for_the_emails_queued_after(
    app: Flask, admin_client: FlaskClient
) -> None:
    locations = seeded_clinic()
    body = "Nos vemos el {date}\n\n{first_name}: le esperamos en {location} a las {time}."
    assert (
        post(admin_client, "/staff/texts/email_confirmation/es", {"body": body}).status_code == 302
    )
    appt = book(
        booking_request(
            make_slot(locations[0], days_ahead=5), email="ana@example.com", language="es"
        )
    )
    row = emails_of(appt)["confirmation"]
    assert row.subject and row.subject.startswith("Nos vemos el ")
    assert row.body.startswith("Maria: le esperamos en")


def test_staff_see_the_emails_on_the_appointments_thread(
    app: Flask, admin_client: FlaskClient
) -> None:
    appt = book(booking_request(make_slot(days_ahead=5), email="ana@example.com"))
    page = admin_client.get(f"/staff/appointments/{appt.id}").get_data(as_text=True)
    assert "email to ana@example.com · confirmation · pending" in page
    assert "text · confirmation · pending" in page
    assert "<strong>Your appointment at" in page


def test_staff_send_the_instructions_again_by_text_and_email(
    app: Flask, staff_client: FlaskClient
) -> None:
    from tests.factories import add_message_schedules, texts_of

    add_message_schedules()
    both = book(booking_request(make_slot(days_ahead=9), email="ana@example.com"))
    path = f"/staff/appointments/{both.id}/resend-instructions"
    done = post(staff_client, path, {"version": "1"}, follow_redirects=True)
    assert "will be texted and emailed again shortly" in done.get_data(as_text=True)
    assert "instructions#2" in texts_of(both) and "instructions#2" in emails_of(both)
    assert emails_of(both)["instructions#2"].status == "pending"

    by_email = book(
        booking_request(make_slot(days_ahead=9), email="luz@example.com", sms_consent=False)
    )
    done = post(
        staff_client,
        f"/staff/appointments/{by_email.id}/resend-instructions",
        {"version": "1"},
        follow_redirects=True,
    )
    assert "will be emailed again shortly" in done.get_data(as_text=True)
    assert texts_of(by_email) == {}
    assert set(emails_of(by_email)) == {
        "confirmation",
        "instructions",
        "reminder",
        "instructions#2",
    }


def test_the_waitlist_offer_and_closure_emails_are_edited_like_the_others(
    clock: Clock, app: Flask, admin_client: FlaskClient
) -> None:
    seeded_clinic()
    listing = admin_client.get("/staff/texts").get_data(as_text=True)
    assert "Email: waitlist offer" in listing
    assert "Email: the clinic closed at the visit&#39;s time" in listing
    assert "/staff/texts/email_waitlist_offer/es" in listing
    assert "/staff/texts/email_closure_notice/en" in listing
    offer = admin_client.get("/staff/texts/email_waitlist_offer/en").get_data(as_text=True)
    assert "<strong>Subject:</strong> An earlier time opened at Kerrville" in offer
    assert "https://book.example.test/offer/" in offer and "holds for 30 minutes" in offer
    closed = admin_client.get("/staff/texts/email_closure_notice/es").get_data(as_text=True)
    assert "<strong>Subject:</strong> Elija otra hora: Kerrville no abre el" in closed
    # An offer has no booking yet: no reference, no manage link in its email.
    no_booking = post(
        admin_client,
        "/staff/texts/email_waitlist_offer/en",
        {"body": "Time for you\n\n{first_name}: {reference} {manage_url}"},
    )
    assert no_booking.status_code == 422
    assert "Unknown placeholder {manage_url}, {reference}" in no_booking.get_data(as_text=True)
    saved = post(
        admin_client,
        "/staff/texts/email_waitlist_offer/en",
        {"body": "A time for you, {first_name}\n\n{date} {time}: {offer_url} ({minutes} min)"},
    )
    assert saved.status_code == 302
    # The offers queued from then on use it.
    from tests.factories import cancel, make_appointment
    from tests.waitlist.conftest import join, offer_texts

    slot = make_slot(seeded_location(), days_ahead=4, capacity=1)
    appt = make_appointment(slot)
    join(slot.location, sms_consent=False, sms_consent_text=None, email="ana@example.com")
    cancel(appt)
    (email,) = offer_texts()
    assert email.subject and email.subject.startswith("A time for you, Wait")
    assert "/offer/" in email.body and "(30 min)" in email.body


def seeded_location() -> Location:
    from scheduler.extensions import db

    location = db.session.scalar(db.select(Location).order_by(Location.position))
    assert location is not None
    return location
