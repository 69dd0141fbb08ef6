from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from icalendar import Calendar
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select

from scheduler.appointments.links import SALT, TOKEN_SALT, manage_token
from scheduler.availability.operations import roll_slots_forward
from scheduler.extensions import db
from scheduler.models import Appointment, Patient, Slot, utcnow
from tests.conftest import Clock, hidden_fields
from tests.factories import CHICAGO, make_appointment, make_slot, seeded_clinic


@pytest.fixture
def app_config() -> dict:
    return {"WTF_CSRF_ENABLED": True}


def form_data(**overrides: str) -> dict[str, str]:
    data = {
        "first_name": "José",
        "last_name": "O'Brien-Núñez",
        "phone": "(830) 257-4811",
        "email": "jose@example.com",
        "date_of_birth": "1955-07-14",
        "language": "en",
        "conservative_treatment_8_weeks": "not_sure",
        "sms_consent": "y",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def open_form(client: FlaskClient, slot: Slot) -> tuple[str, dict[str, str]]:
    url = f"/book/{slot.location.slug}/{slot.id}"
    page = client.get(url)
    assert page.status_code == 200
    return url, hidden_fields(page.get_data(as_text=True))


def submit(client: FlaskClient, slot: Slot, **overrides: str):
    url, hidden = open_form(client, slot)
    return client.post(url, data={**hidden, **form_data(**overrides)})


def appointments() -> int:
    return db.session.scalar(select(func.count(Appointment.id)))


def test_home_lists_the_three_locations_and_explains_mild(client: FlaskClient) -> None:
    seeded_clinic()
    html = client.get("/").get_data(as_text=True)
    for name, slug in (
        ("Boerne", "boerne"),
        ("Kerrville", "kerrville"),
        ("San Antonio", "san-antonio"),
    ):
        assert name in html
        assert f'href="/book/{slug}"' in html
    assert "(210) 920-8945" in html
    assert "lumbar spinal stenosis" in html
    # Seeded addresses are placeholders for staff to edit: patients see the city only.
    assert "placeholder" not in html
    assert "Boerne, TX" in html and "San Antonio, TX" in html


@pytest.mark.clock  # a week from today, at a known date
def test_slot_page_groups_by_day_in_central_time_and_hides_full_slots(client: FlaskClient) -> None:
    locations = seeded_clinic()
    roll_slots_forward()
    kerrville = locations[1]
    first = db.session.scalar(
        select(Slot)
        .where(Slot.location_id == kerrville.id, Slot.starts_at > utcnow() + timedelta(hours=3))
        .order_by(Slot.starts_at)
    )
    make_appointment(first)
    make_appointment(first, first_name="Luz")
    html = client.get("/book/kerrville").get_data(as_text=True)
    assert f"/book/kerrville/{first.id}" not in html
    assert html.count('<section class="day"') == 5  # from Tuesday: Tue-Fri, then Monday
    times = re.findall(r'class="slot"[^>]*>(\d{1,2}:\d\d [AP]M C[SD]T)', html)
    assert times and all(t.endswith(("CST", "CDT")) for t in times)
    assert "8:00 AM" in html
    assert "Later dates" in html


def test_unknown_location_is_a_friendly_404(client: FlaskClient) -> None:
    response = client.get("/book/austin")
    assert response.status_code == 404
    assert "We have no clinic at that address" in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_booking_through_the_form(client: FlaskClient) -> None:
    slot = make_slot(capacity=2)
    response = submit(client, slot)
    assert response.status_code == 303
    page = client.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    appt = db.session.scalar(select(Appointment))
    assert "You&#39;re booked, José" in html or "You're booked, José" in html
    assert appt.reference in html
    assert "(210) 920-8945" in html
    assert "arrive 15 minutes early" in html
    assert "appointment.ics" in html
    assert "/cancel" in html and "/reschedule" in html
    patient = appt.patient
    assert (patient.first_name, patient.last_name) == ("José", "O'Brien-Núñez")
    assert patient.phone == "+18302574811"
    assert patient.sms_consent and patient.sms_consent_source == "online_form"
    assert "Reply STOP" in patient.sms_consent_text
    assert appt.conservative_treatment == "not_sure"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Robots-Tag"] == "noindex, nofollow"


def test_spanish_speakers_get_spanish_instructions(client: FlaskClient) -> None:
    seeded_clinic()
    slot = make_slot(capacity=1)
    response = submit(client, slot, language="es")
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Por favor llegue 15 minutos antes" in html


def test_consent_box_is_unticked_and_optional(client: FlaskClient) -> None:
    slot = make_slot()
    html = client.get(f"/book/{slot.location.slug}/{slot.id}").get_data(as_text=True)
    checkbox = re.search(r'<input[^>]*name="sms_consent"[^>]*>', html).group(0)
    assert "checked" not in checkbox
    assert "Reply STOP to opt out" in html
    submit(client, slot, sms_consent=None, conservative_treatment_8_weeks=None)
    patient = db.session.scalar(select(Patient))
    assert patient.sms_consent is False and patient.sms_consent_at is None
    assert db.session.scalar(select(Appointment)).conservative_treatment is None


def test_errors_show_next_to_their_field_and_keep_what_was_typed(client: FlaskClient) -> None:
    slot = make_slot()
    response = submit(client, slot, phone="12", email="nope", first_name="Ann3", last_name="Lee")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert re.search(r'id="phone"[^>]*value="12"', html)
    assert 'id="phone-error"' in html and "valid US mobile" in html
    assert 'id="email-error"' in html
    assert 'id="first_name-error"' in html
    assert 'value="Lee"' in html
    assert 'id="last_name-error"' not in html
    assert appointments() == 0


@pytest.mark.parametrize(
    "phone",
    [
        "(830) 257-4811",
        "830-257-4811",
        "830.257.4811",
        "8302574811",
        "+1 830 257 4811",
        "1 (830) 257-4811",
    ],
)
def test_usual_us_phone_spellings_are_stored_as_e164(client: FlaskClient, phone: str) -> None:
    slot = make_slot()
    assert submit(client, slot, phone=phone).status_code == 303
    assert db.session.scalar(select(Patient.phone)) == "+18302574811"


@pytest.mark.parametrize(
    ("first", "last"),
    [("Zoë", "D'Angelo"), ("Mary-Jane", "St. John"), ("Nguyễn", "Văn An"), ("Renée", "D’Souza")],
)
def test_names_with_accents_and_apostrophes(client: FlaskClient, first: str, last: str) -> None:
    slot = make_slot()
    assert submit(client, slot, first_name=first, last_name=last).status_code == 303
    assert db.session.scalar(select(Patient.last_name)) == last


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "A" * 61),
        ("last_name", ""),
        ("phone", "9" * 40),
        ("date_of_birth", "2999-01-01"),
        ("date_of_birth", "not a date"),
        ("date_of_birth", ""),
        ("language", "de"),
    ],
)
def test_bad_fields_are_refused_on_the_form(client: FlaskClient, field: str, value: str) -> None:
    slot = make_slot()
    response = submit(client, slot, **{field: value})
    assert response.status_code == 422
    assert f'id="{field}-error"' in response.get_data(as_text=True) or field == "language"
    assert appointments() == 0


def test_us_dates_are_accepted_on_the_form(client: FlaskClient) -> None:
    slot = make_slot()
    assert submit(client, slot, date_of_birth="07/14/1955").status_code == 303


@pytest.mark.clock(datetime(2026, 12, 31, 23, 30, tzinfo=CHICAGO))
def test_a_two_digit_year_is_read_against_the_clinics_year_not_the_servers(
    client: FlaskClient,
) -> None:
    """At 23:30 on New Year's Eve in Texas it is already 2027 on a server in UTC: "27" is 1927."""
    slot = make_slot(capacity=2)
    assert submit(client, slot, date_of_birth="4/15/27").status_code == 303
    assert db.session.scalar(select(Patient.date_of_birth)) == date(1927, 4, 15)


def test_post_without_csrf_token_is_refused(client: FlaskClient) -> None:
    slot = make_slot()
    url, hidden = open_form(client, slot)
    hidden.pop("csrf_token")
    response = client.post(url, data={**hidden, **form_data()})
    assert response.status_code == 400
    assert "form has expired" in response.get_data(as_text=True)
    assert appointments() == 0


def test_double_submit_books_once(client: FlaskClient) -> None:
    slot = make_slot(capacity=3)
    url, hidden = open_form(client, slot)
    first = client.post(url, data={**hidden, **form_data()})
    second = client.post(url, data={**hidden, **form_data()})
    assert first.status_code == second.status_code == 303
    reference = first.headers["Location"].split("/")[2]
    assert second.headers["Location"].split("/")[2] == reference
    assert appointments() == 1
    db.session.refresh(slot)
    assert slot.booked_count == 1


def test_a_slot_taken_meanwhile_offers_other_times_and_keeps_the_form(client: FlaskClient) -> None:
    slot = make_slot(capacity=1)
    other = make_slot(slot.location, days_ahead=4)
    url, hidden = open_form(client, slot)
    make_appointment(slot, first_name="Luz")
    response = client.post(url, data={**hidden, **form_data()})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "just booked by someone else" in html
    assert f'value="{other.id}"' in html
    assert 'value="José"' in html
    follow = client.post(url, data={**hidden, **form_data(), "slot_id": str(other.id)})
    assert follow.status_code == 303


@pytest.mark.parametrize("app_config", [{"RATELIMIT_ENABLED": True, "WTF_CSRF_ENABLED": True}])
def test_form_posts_are_rate_limited(client: FlaskClient) -> None:
    slot = make_slot(capacity=20)
    codes = [
        submit(client, slot, first_name=f"Ana{chr(97 + i)}", phone=f"830257{1000 + i}").status_code
        for i in range(6)
    ]
    assert codes == [303] * 5 + [429]
    assert client.get(f"/book/{slot.location.slug}/{slot.id}").status_code == 200


def manage_path(appt: Appointment, token: str | None = None) -> str:
    return f"/manage/{appt.reference}/{token or manage_token(appt)}"


def test_calendar_file_parses_and_holds_utc_instants(client: FlaskClient) -> None:
    appt = make_appointment(make_slot(days_ahead=9))
    response = client.get(manage_path(appt) + "/appointment.ics")
    assert response.mimetype == "text/calendar"
    assert f'filename="{appt.reference}.ics"' in response.headers["Content-Disposition"]
    [event] = Calendar.from_ical(response.data).walk("VEVENT")
    assert event.decoded("dtstart") == appt.slot.starts_at
    assert event.decoded("dtstart").utcoffset() == timedelta(0)
    assert event.decoded("dtend") == appt.slot.ends_at
    assert str(event["uid"]) == f"{appt.reference}@book.example.test"
    assert "DTSTART:" in response.get_data(as_text=True)
    assert response.get_data(as_text=True).count("Z\r\n") >= 2


def test_forged_link_is_refused(client: FlaskClient) -> None:
    appt = make_appointment()
    forged_legacy = URLSafeTimedSerializer("wrong-key", salt=SALT).dumps(
        {"r": appt.reference, "n": appt.manage_nonce}
    )
    forged = TimestampSigner("wrong-key", salt=TOKEN_SALT).sign(appt.manage_nonce).decode()
    for path in (
        manage_path(appt, forged),
        manage_path(appt, forged_legacy),
        f"/manage/{appt.reference}/garbage",
    ):
        response = client.get(path)
        assert response.status_code == 404
        html = response.get_data(as_text=True)
        assert "could not open this link" in html
        assert appt.patient.first_name not in html


def test_links_are_short_and_earlier_json_links_still_open(client: FlaskClient, app: Flask) -> None:
    appt = make_appointment()
    assert len(manage_token(appt)) <= 52  # they go out in text messages
    legacy = URLSafeTimedSerializer(app.secret_key, salt=SALT).dumps(
        {"r": appt.reference, "n": appt.manage_nonce}
    )
    assert client.get(manage_path(appt, legacy)).status_code == 200
    other = make_appointment(make_slot(days_ahead=5))
    assert client.get(manage_path(other, legacy)).status_code == 404


def test_another_bookings_token_is_refused(client: FlaskClient) -> None:
    mine = make_appointment(make_slot())
    theirs = make_appointment(make_slot(days_ahead=5), first_name="Luz")
    response = client.get(f"/manage/{theirs.reference}/{manage_token(mine)}")
    assert response.status_code == 404
    assert "Luz" not in response.get_data(as_text=True)
    csrf = hidden_fields(client.get(manage_path(mine) + "/cancel").get_data(as_text=True))
    refused = client.post(f"/manage/{theirs.reference}/{manage_token(mine)}/cancel", data=csrf)
    assert refused.status_code == 404
    db.session.refresh(theirs)
    assert theirs.status == "booked"


def test_expired_link_is_refused(clock: Clock, client: FlaskClient) -> None:
    appt = make_appointment(make_slot())
    path = manage_path(appt)
    clock.shift(timedelta(days=119))
    assert client.get(path).status_code == 200
    clock.shift(timedelta(days=2))
    response = client.get(path)
    assert response.status_code == 410
    assert "expired" in response.get_data(as_text=True)


def test_revoked_nonce_is_refused(client: FlaskClient) -> None:
    appt = make_appointment()
    path = manage_path(appt)
    appt.manage_nonce = "rotated"
    db.session.commit()
    assert client.get(path).status_code == 404


def test_cancel_from_the_manage_link_frees_the_slot(client: FlaskClient) -> None:
    slot = make_slot(capacity=1)
    appt = make_appointment(slot)
    page = client.get(manage_path(appt) + "/cancel")
    token = hidden_fields(page.get_data(as_text=True))["csrf_token"]
    response = client.post(manage_path(appt) + "/cancel", data={"csrf_token": token})
    assert response.status_code == 303
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your appointment is cancelled" in html
    db.session.refresh(slot)
    assert slot.booked_count == 0
    day = slot.starts_at.astimezone(CHICAGO).date()
    listing = client.get(f"/book/{slot.location.slug}?from={day}").get_data(as_text=True)
    assert f"/book/{slot.location.slug}/{slot.id}" in listing


def test_reschedule_from_the_manage_link(client: FlaskClient) -> None:
    old_slot = make_slot(capacity=1)
    new_slot = make_slot(old_slot.location, days_ahead=6, capacity=1)
    appt = make_appointment(old_slot)
    link = manage_path(appt)
    choose = client.get(link + "/reschedule")
    assert choose.status_code == 200
    confirm_url = link + f"/reschedule/{new_slot.id}"
    assert confirm_url in choose.get_data(as_text=True)
    confirm = client.get(confirm_url)
    hidden = hidden_fields(confirm.get_data(as_text=True))
    response = client.post(confirm_url, data=hidden)
    assert response.status_code == 303
    new = db.session.scalar(select(Appointment).where(Appointment.slot_id == new_slot.id))
    assert response.headers["Location"].startswith(f"/manage/{new.reference}/")
    # The old link is now stale: a clear page, no details.
    stale = client.get(link)
    assert stale.status_code == 410
    assert "out of date" in stale.get_data(as_text=True)
    db.session.refresh(old_slot)
    db.session.refresh(new_slot)
    assert (old_slot.booked_count, new_slot.booked_count) == (0, 1)


def test_every_page_carries_security_headers(client: FlaskClient) -> None:
    for path in ("/", "/nowhere", "/api/v1/locations", "/healthz"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in headers
    secure = client.get("/", base_url="https://book.example.test")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_patient_links_ignore_the_host_header(client: FlaskClient) -> None:
    slot = make_slot()
    response = client.post(
        "/api/v1/appointments",
        json={
            "slot_id": slot.id,
            "first_name": "Ana",
            "last_name": "Lee",
            "phone": "8302574811",
            "sms_consent": False,
        },
        headers={"Host": "evil.example"},
    )
    assert response.get_json()["manage_url"].startswith("https://book.example.test/")


def test_pages_have_no_inline_script(client: FlaskClient) -> None:
    slot = make_slot()
    for path in ("/", f"/book/{slot.location.slug}", f"/book/{slot.location.slug}/{slot.id}"):
        html = client.get(path).get_data(as_text=True)
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
        assert all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
        assert " onclick=" not in html and "style=" not in html


def test_times_are_shown_in_central_time(client: FlaskClient) -> None:
    appt = make_appointment(make_slot(days_ahead=9, at=time(10)))
    html = client.get(manage_path(appt)).get_data(as_text=True)
    assert re.search(r"<strong>10:00 AM C[SD]T</strong>", html)
    utc_hour = appt.slot.starts_at.astimezone(UTC).hour
    assert f"{utc_hour - 12}:00 PM" not in html


def test_booking_over_https_works_with_the_referrer_policy(app: Flask) -> None:
    """Flask-WTF checks the Referer of HTTPS posts; browsers send it same-origin only."""
    client = app.test_client()
    base = "https://book.example.test"
    slot = make_slot()
    url = f"/book/{slot.location.slug}/{slot.id}"
    page = client.get(url, base_url=base)
    assert page.headers["Referrer-Policy"] == "same-origin"
    data = {**hidden_fields(page.get_data(as_text=True)), **form_data()}
    response = client.post(url, data=data, base_url=base, headers={"Referer": base + url})
    assert response.status_code == 303
    without_referer = client.post(url, data=data, base_url=base)
    assert without_referer.status_code == 400


def test_a_reused_submission_id_with_other_details_is_refused(client: FlaskClient) -> None:
    slot = make_slot(capacity=3)
    url, hidden = open_form(client, slot)
    client.post(url, data={**hidden, **form_data()})
    response = client.post(url, data={**hidden, **form_data(first_name="Mallory")})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "already sent once" in html
    assert "/manage/" not in html
    assert appointments() == 1


@pytest.mark.parametrize("submission_id", ["", "short", "x" * 100, "bad id with spaces!!"])
def test_submission_id_must_be_one_the_server_made(client: FlaskClient, submission_id: str) -> None:
    slot = make_slot()
    url, hidden = open_form(client, slot)
    response = client.post(url, data={**hidden, **form_data(), "submission_id": submission_id})
    assert response.status_code == 422
    assert appointments() == 0


def test_manage_page_keeps_the_token_it_was_opened_with(clock: Clock, client: FlaskClient) -> None:
    """Viewing the page must not mint a fresh token, or links would never expire."""
    appt = make_appointment()
    token = manage_token(appt)
    clock.shift(timedelta(days=2))
    html = client.get(manage_path(appt, token)).get_data(as_text=True)
    tokens = set(re.findall(rf"/manage/{appt.reference}/([^/\"?<]+)", html))
    assert tokens == {token}


@pytest.mark.clock
def test_slot_page_skips_ahead_to_the_first_free_day(client: FlaskClient) -> None:
    slot = make_slot(days_ahead=40)
    html = client.get(f"/book/{slot.location.slug}").get_data(as_text=True)
    assert f"/book/{slot.location.slug}/{slot.id}" in html
    assert "Earlier dates" in html
    # An explicit date is shown as asked, even when empty.
    today = utcnow().astimezone(CHICAGO).date()
    empty = client.get(f"/book/{slot.location.slug}?from={today}").get_data(as_text=True)
    assert "No free times in these dates" in empty
