"""Admin: texts with live preview, staff accounts, audit log, feeds; also CSV and dashboard."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, time, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from icalendar import Calendar
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from scheduler.extensions import db
from scheduler.models import (
    AppointmentStatus,
    AuditEntry,
    ContentBlock,
    Location,
    OpeningRule,
    ScheduleException,
    StaffUser,
)
from scheduler.sms.replies import Inbound, handle_inbound
from tests.factories import (
    CHICAGO,
    book,
    booking_request,
    cancel,
    days_from_today,
    local_instant,
    make_appointment,
    make_slot,
    seeded_clinic,
    texts_of,
)
from tests.staff.conftest import PASSWORD, appointment_today, post, sign_in


def test_a_template_with_an_unknown_placeholder_cannot_be_saved(
    app: Flask, admin_client: FlaskClient
) -> None:
    seeded_clinic()
    path = "/staff/texts/sms_reminder/en"
    page = admin_client.get(path).get_data(as_text=True)
    assert "segment" in page and "Guadalupe" in page  # preview on a sample visit
    refused = post(admin_client, path, {"body": "Hi {first_name} {last_name}, see you {date}"})
    assert refused.status_code == 422
    assert "Unknown placeholder {last_name}" in refused.get_data(as_text=True)
    broken = post(admin_client, path, {"body": "Hi {first_name"})
    assert broken.status_code == 422
    assert db.session.scalar(
        select(ContentBlock.body).where(
            ContentBlock.key == "sms_reminder", ContentBlock.language == "en"
        )
    ).startswith("{clinic}: Reminder")


def test_saving_a_location_template_changes_the_texts_queued_after(
    app: Flask, admin_client: FlaskClient
) -> None:
    locations = seeded_clinic()
    kerrville = locations[1]
    body = "{clinic} {location}: see you {date} at {time}. Reply C to confirm, R to reschedule."
    done = post(admin_client, "/staff/texts/sms_confirmation/en?location=kerrville", {"body": body})
    assert done.status_code == 302
    appt = book(booking_request(make_slot(kerrville, days_ahead=5)))
    assert texts_of(appt)["confirmation"].body.startswith("Freedom Spine & Pain Center Kerrville:")
    other = book(booking_request(make_slot(locations[0], days_ahead=5)))
    assert "Hi Maria" in texts_of(other)["confirmation"].body
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "text.edit")).all()
    assert entry.target_label == "sms_confirmation/en/kerrville"
    assert entry.details["after"] == body


def test_live_preview_counts_characters_and_segments(app: Flask, admin_client: FlaskClient) -> None:
    seeded_clinic()
    preview = post(
        admin_client,
        "/staff/texts/sms_reminder/es/preview",
        {"body": "Hola {first_name}, ¿{time}?"},
    ).get_json()
    assert preview["ok"] and preview["text"].startswith("Hola Guadalupe, ¿")
    assert preview["segments"] == 1 and preview["encoding"] == "GSM-7"
    assert "blocks" not in preview  # a text is one message, not a page
    long = post(admin_client, "/staff/texts/sms_reminder/en/preview", {"body": "á" * 71}).get_json()
    assert (long["encoding"], long["segments"]) == ("UCS-2", 2)
    bad = post(admin_client, "/staff/texts/sms_reminder/en/preview", {"body": "{dob}"}).get_json()
    assert not bad["ok"] and "Unknown placeholder {dob}" in bad["error"]


def test_admins_create_and_disable_staff_accounts(app: Flask, admin_client: FlaskClient) -> None:
    form = {"email": "New.Person@FreedomSpine.com", "role": "scheduler", "password": "short"}
    assert post(admin_client, "/staff/users", form).status_code == 422
    created = post(admin_client, "/staff/users", {**form, "password": PASSWORD})
    assert created.status_code == 302
    user = db.session.scalar(
        select(StaffUser).where(StaffUser.email == "new.person@freedomspine.com")
    )
    assert user.password_hash.startswith("scrypt:") and PASSWORD not in user.password_hash
    again = post(admin_client, "/staff/users", {**form, "password": PASSWORD})
    assert "already an account" in again.get_data(as_text=True)
    client = app.test_client()
    assert sign_in(client, user).status_code == 302
    post(admin_client, f"/staff/users/{user.id}/disable")
    assert client.get("/staff/dashboard").status_code == 302  # signed out at once
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.target_type == "staff_user")
    ).all()
    assert actions == ["staff.create", "staff.disable"]
    entries = str(db.session.scalars(select(AuditEntry.details)).all())
    assert PASSWORD not in entries and "scrypt" not in entries


@pytest.mark.clock  # the visit earlier today has begun
def test_the_audit_log_is_append_only_and_readable_by_admins(
    app: Flask, admin_client: FlaskClient
) -> None:
    appt = appointment_today()
    post(admin_client, f"/staff/appointments/{appt.id}/mark/arrived", {"version": "1"})
    page = admin_client.get("/staff/audit").get_data(as_text=True)
    page = page[page.index('class="audit-entries"') :]  # the log itself, not the notice
    assert f"Admin marked {appt.reference} arrived." in page
    assert "appointment.arrived" not in page
    assert "Maria" not in page and "Garza" not in page  # no patient record in the log
    with pytest.raises(DBAPIError):
        db.session.execute(update(AuditEntry).values(action="nothing happened"))
    db.session.rollback()
    with pytest.raises(DBAPIError):
        db.session.execute(text("DELETE FROM audit_entries"))
    db.session.rollback()
    assert db.session.scalar(select(AuditEntry.action).order_by(AuditEntry.id.desc())) == (
        "appointment.arrived"
    )


def test_calendar_feed_behind_a_secret_revocable_url(app: Flask, admin_client: FlaskClient) -> None:
    location = seeded_clinic()[0]
    appt = make_appointment(make_slot(location, days_ahead=3))
    cancelled = make_appointment(make_slot(location, days_ahead=4))
    cancelled.status = AppointmentStatus.CANCELLED
    db.session.commit()
    page = post(admin_client, f"/staff/locations/{location.slug}/feed").get_data(as_text=True)
    [url] = re.findall(r"http://localhost(/staff/feeds/[^<]+\.ics)", page)
    feed = app.test_client().get(url)  # no session: the URL is the key
    assert feed.status_code == 200 and feed.mimetype == "text/calendar"
    events = Calendar.from_ical(feed.data).walk("VEVENT")
    assert [str(e["summary"]) for e in events] == [f"Maria G. ({appt.reference})"]
    assert "8302574811" not in feed.get_data(as_text=True)  # minimum necessary
    post(admin_client, f"/staff/locations/{location.slug}/feed")  # a new secret revokes the old
    assert app.test_client().get(url).status_code == 404
    assert app.test_client().get(f"/staff/feeds/{location.slug}/guess.ics").status_code == 404
    db.session.remove()
    assert db.session.get(Location, location.id).feed_token_hash not in url


def test_csv_export_of_a_day_and_a_week(app: Flask, staff_client: FlaskClient) -> None:
    location = seeded_clinic()[2]
    slot = make_slot(location, days_ahead=3)
    make_appointment(slot, first_name="=HYPERLINK(1)", last_name="García-Ramírez")
    day = slot.starts_at.astimezone(CHICAGO).date()
    for view in ("day", "week"):
        response = staff_client.get(
            "/staff/export.csv", query_string={"location": location.slug, "date": day, "view": view}
        )
        assert response.status_code == 200 and response.mimetype == "text/csv"
        assert response.mimetype_params["charset"] == "utf-8"
        # A UTF-8 byte order mark first, so that Excel on Windows reads the accents right.
        raw = response.get_data()
        assert raw.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
        assert rows[0][:5] == ["date", "time", "location", "reference", "status"]
        assert len(rows) == 2
        assert rows[1][5] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
        assert rows[1][6] == "García-Ramírez"
    assert staff_client.get("/staff/export.csv").status_code == 400


@pytest.mark.clock(datetime(2027, 4, 15, 10, 7, tzinfo=CHICAGO))  # a Thursday
def test_dashboard_counts_bookings_confirmations_and_no_shows(
    app: Flask, staff_client: FlaskClient
) -> None:
    """On a Thursday, this week's visits that already happened count as this week's too."""
    location = seeded_clinic()[0]
    monday = date(2027, 4, 12)
    assert days_from_today(0) == monday + timedelta(days=3)
    ahead = [
        make_appointment(make_slot(location, starts_at=local_instant(date(2027, 4, 20), time(h))))
        for h in (9, 10, 11)
    ]  # next Tuesday
    make_appointment(make_slot(location, starts_at=local_instant(date(2027, 4, 16), time(9))))
    # Visits already past: this Monday, Tuesday and Wednesday, and last Friday.
    past = [
        (date(2027, 4, 12), "no_show"),
        (date(2027, 4, 13), "completed"),
        (date(2027, 4, 14), "arrived"),
        (date(2027, 4, 9), "completed"),
    ]
    for day, status in past:
        slot = make_slot(location, starts_at=local_instant(day, time(9)))
        appt = book(booking_request(slot), now=slot.starts_at - timedelta(days=2))
        appt.status = status
    db.session.commit()
    # Two of the three ahead confirm by text; one of them is then cancelled.
    for appt in ahead[:2]:
        handle_inbound(Inbound(f"SM{appt.id}", appt.patient.phone, "+1", "C"), appt.created_at)
    cancel(ahead[1])
    html = staff_client.get("/staff/dashboard").get_data(as_text=True)
    boerne = html[html.index("<h2>Boerne</h2>") : html.index("<h2>Kerrville</h2>")]
    facts = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]*)", boerne))
    assert facts["Bookings this week"] == "4"  # Monday, Tuesday, Wednesday and Friday
    assert facts["Bookings next week"] == "2"
    # Denominator: with consent, holding a place, from 30 days ago on: 4 past, Friday and
    # 2 ahead; numerator: the one still holding its place that confirmed by text.
    assert facts["Confirmed by text (last 30 days and ahead)"].strip() == f"{round(100 / 7)}%"
    assert facts["No-shows (last 30 days)"].strip() == "25%"


def test_admins_edit_a_location_and_every_setting_change_is_audited(
    app: Flask, admin_client: FlaskClient
) -> None:
    location = seeded_clinic()[0]
    assert location.address_is_placeholder
    form = {
        "name": "Boerne",
        "address": "123 Main St, Boerne, TX 78006",
        "phone": "(830) 555-0199",
        "closed_on_federal_holidays": "y",
        "is_active": "y",
    }
    assert post(admin_client, "/staff/locations/boerne/details", form).status_code == 302
    db.session.remove()
    saved = db.session.get(Location, location.id)
    assert (saved.address, saved.phone, saved.address_is_placeholder) == (
        "123 Main St, Boerne, TX 78006",
        "+18305550199",
        False,
    )
    bad = post(
        admin_client,
        "/staff/locations/boerne/details",
        {**form, "phone": "12"},
        follow_redirects=True,
    )
    assert "Enter a US phone number" in bad.get_data(as_text=True)
    # Every kind of change leaves its entry.
    post(
        admin_client, "/staff/locations/boerne/exceptions", {"day": "2027-01-04", "kind": "closed"}
    )
    exception_id = db.session.scalar(select(ScheduleException.id))
    post(admin_client, f"/staff/locations/boerne/exceptions/{exception_id}/delete")
    rule_id = db.session.scalar(select(OpeningRule.id).where(OpeningRule.weekday == 4))
    post(admin_client, f"/staff/locations/boerne/rules/{rule_id}/delete", {"confirm": "yes"})
    post(admin_client, "/staff/locations/boerne/feed")
    post(admin_client, "/staff/locations/boerne/feed", {"revoke": "y", "confirm": "yes"})
    admin_client.get("/staff/export.csv?location=boerne")
    db.session.remove()
    actions = db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == [
        "location.edit",
        "availability.closure_added",
        "availability.exception_deleted",
        "availability.rule_deleted",
        "feed.new",
        "feed.revoke",
        "export.csv",
    ]
    assert all("token" not in str(d) for d in db.session.scalars(select(AuditEntry.details)))


def test_the_texts_editor_uses_plain_names(app: Flask, admin_client: FlaskClient) -> None:
    seeded_clinic()
    listing = admin_client.get("/staff/texts").get_data(as_text=True)
    for name in ("Pre-visit instructions", "Text: reminder", "Answer to C (confirm)"):
        assert name in listing
    visible = re.sub(r"<[^>]+>", " ", listing)  # what people read, not the addresses
    assert "preconsult" not in visible and "sms_" not in visible and "SMS: " not in visible
    editor = admin_client.get("/staff/texts/preconsult_instructions/es?location=kerrville")
    page = editor.get_data(as_text=True)
    assert "<h1>Pre-visit instructions <small>Spanish, Kerrville</small></h1>" in page
    assert "preconsult" not in page.split("<h1>")[1].split("</h1>")[0]


def test_the_instructions_preview_is_the_list_patients_see(
    app: Flask, admin_client: FlaskClient
) -> None:
    seeded_clinic()
    body = "Bring your MRI or CT reports.\n\nBring photo ID & insurance card.\n  Arrive early.  "
    preview = post(
        admin_client, "/staff/texts/preconsult_instructions/en/preview", {"body": body}
    ).get_json()
    assert preview["ok"]
    assert preview["blocks"] == [
        [
            "list",
            ["Bring your MRI or CT reports.", "Bring photo ID & insurance card.", "Arrive early."],
        ]
    ]
    # The page the editor renders shows the saved instructions as the same list.
    post(admin_client, "/staff/texts/preconsult_instructions/en", {"body": body})
    page = admin_client.get("/staff/texts/preconsult_instructions/en").get_data(as_text=True)
    shown = page[page.index('id="preview-page"') :]
    items = re.findall(r"<li>([^<]*)</li>", shown[: shown.index("</div>")])
    assert items == [
        "Bring your MRI or CT reports.",
        "Bring photo ID &amp; insurance card.",
        "Arrive early.",
    ]
    patient_page = app.test_client().get("/prepare/boerne").get_data(as_text=True)
    assert re.findall(r"<li>([^<]*)</li>", patient_page)[: len(items)] == items
