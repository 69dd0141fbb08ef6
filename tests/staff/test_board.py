"""The day board and the week board: what they show, the panel's actions, the poll, the
closures, the scopes, and that each takes the same statements for 2 or 40 appointments."""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scheduler.availability.operations import roll_slots_forward
from scheduler.extensions import db
from scheduler.models import (
    Appointment,
    AuditEntry,
    Location,
    OutboundMessage,
    ScheduleException,
    Slot,
    StaffUser,
)
from tests.factories import (
    book,
    booking_request,
    days_from_today,
    local_instant,
    make_appointment,
    move,
    seeded_clinic,
    texts_of,
)
from tests.staff.conftest import post
from tests.staff.test_calendar import StatementCounter

pytestmark = pytest.mark.clock  # Tuesday 13 April 2027, 10:07 Central


def slot_of(location: Location, day: date, at: time) -> Slot:
    slot = db.session.scalar(
        select(Slot).where(
            Slot.location_id == location.id, Slot.starts_at == local_instant(day, at)
        )
    )
    assert slot is not None, (location.slug, day, at)
    return slot


def status_of(appt: Appointment) -> str | None:
    return db.session.scalar(select(Appointment.status).where(Appointment.id == appt.id))


def board(client: FlaskClient, day: date, **args: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"date": day.isoformat(), **args}.items())
    response = client.get(f"/staff/calendar?view=day&{query}")
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def grid_of(html: str) -> str:
    return html[html.index('id="board"') :]


@pytest.fixture
def clinic(app: Flask) -> list[Location]:
    locations = seeded_clinic()
    roll_slots_forward()
    return locations


def test_the_day_board_shows_patients_with_chips_and_free_places_not_forms(
    clinic: list[Location], staff_client: FlaskClient
) -> None:
    tomorrow = days_from_today(1)
    boerne, kerrville, _ = clinic
    rosa = make_appointment(slot_of(kerrville, tomorrow, time(9)), first_name="Rosa")
    make_appointment(slot_of(boerne, tomorrow, time(9)), first_name="Luz", last_name="Ibarra")
    gone = make_appointment(slot_of(boerne, tomorrow, time(11)), first_name="Ana")
    from tests.factories import cancel

    cancel(gone)
    html = board(staff_client, tomorrow)
    grid = grid_of(html)
    assert grid.count("<form") == 0  # no block forms, no reason boxes
    assert grid.index('"loc-name">Boerne<') < grid.index('"loc-name">Kerrville<')
    hours = f"/staff/locations/kerrville/availability?day={tomorrow.isoformat()}#closures"
    assert hours in grid
    assert "Rosa Garza" in grid and "Luz Ibarra" in grid
    assert 'class="chip status-booked">booked<' in grid
    assert 'class="chip status-cancelled">cancelled<' in grid  # struck through, compact
    assert f"appointment={rosa.id}#panel" in grid
    # Free capacity: one link per place with room (18 slots x 3, less the two full-ish).
    assert ">1 free<" in grid and ">2 free<" in grid
    assert "book a caller or block</span>" in grid
    # One location only.
    only = grid_of(board(staff_client, tomorrow, location="kerrville"))
    assert "Rosa Garza" in only and "Luz Ibarra" not in only


def test_past_hours_collapse_behind_a_toggle(
    clinic: list[Location], staff_client: FlaskClient
) -> None:
    today = days_from_today(0)  # it is 10:07
    early = slot_of(clinic[1], today, time(8, 30))
    waiting = book(
        booking_request(early, first_name="Early", last_name="Bird"),
        now=early.starts_at - timedelta(days=1),
    )
    grid = grid_of(board(staff_client, today))
    earlier, rest = grid.split("</details>", 1)
    assert '<details class="earlier">' in earlier
    assert "Earlier hours, 8:00 AM–9:30 AM: 1 patient" in earlier
    assert "Early Bird" in earlier and "Early Bird" not in rest
    assert "10:00 AM" in rest
    # The toggle is open when asked, or when the picked patient is in those hours.
    assert '<details class="earlier" open>' in board(staff_client, today, earlier=1)
    picked = board(staff_client, today, appointment=waiting.id)
    assert '<details class="earlier" open>' in picked


def test_the_panel_of_a_patient_holds_every_action_and_they_return_to_the_board(
    clinic: list[Location], staff_client: FlaskClient
) -> None:
    today = days_from_today(0)
    slot = slot_of(clinic[1], today, time(14))
    appt = book(booking_request(slot, first_name="Rosa"), now=slot.starts_at - timedelta(days=1))
    html = board(staff_client, today, appointment=appt.id)
    panel = html[html.index('id="panel"') : html.index('id="board"')]
    for action in (
        f"/staff/appointments/{appt.id}/mark/arrived",
        f"/staff/appointments/{appt.id}/cancel",
        f"/staff/appointments/{appt.id}/reschedule",
        f"/staff/appointments/{appt.id}/notes",
        f"/staff/appointments/{appt.id}/resend-instructions",
        f"/staff/book/{slot.id}",
        f"/staff/slots/{slot.id}/block",
    ):
        assert action in panel, action
    assert f'name="version" value="{appt.version}"' in panel
    back = f"/staff/calendar?view=day&date={today.isoformat()}&appointment={appt.id}"
    # Mark arrived from the panel: back on the board, marked.
    response = post(
        staff_client,
        f"/staff/appointments/{appt.id}/mark/arrived",
        {"version": appt.version, "return_to": back},
    )
    assert response.status_code == 302 and response.location.endswith(back)
    html = staff_client.get(back).get_data(as_text=True)
    assert "Rosa Garza is marked arrived." in html
    assert 'class="chip status-arrived">arrived<' in html
    # The page showed version 1: a second click with it loses cleanly.
    response = post(
        staff_client,
        f"/staff/appointments/{appt.id}/mark/no_show",
        {"version": 1, "return_to": back},
        follow_redirects=True,
    )
    assert "changed" in response.get_data(as_text=True).lower()
    assert status_of(appt) == "arrived"
    # A note from the panel comes back to the board too.
    response = post(
        staff_client,
        f"/staff/appointments/{appt.id}/notes",
        {"version": 2, "body": "Brought his MRI", "return_to": back},
    )
    assert response.location.endswith(back)
    # Cancelling from the panel asks first, then comes back to the board.
    later = slot_of(clinic[0], days_from_today(1), time(9))
    luz = make_appointment(later, first_name="Luz")
    tomorrow_back = f"/staff/calendar?view=day&date={days_from_today(1).isoformat()}"
    asked = post(
        staff_client,
        f"/staff/appointments/{luz.id}/cancel",
        {"version": luz.version, "return_to": tomorrow_back},
    )
    question = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Cancel Luz Garza" in question
    assert f'name="return_to" value="{tomorrow_back}"'.replace("&", "&amp;") in question
    assert status_of(luz) == "booked"
    done = post(
        staff_client,
        f"/staff/appointments/{luz.id}/cancel",
        {"version": luz.version, "return_to": tomorrow_back, "confirm": "yes"},
    )
    assert done.location.endswith(tomorrow_back) and status_of(luz) == "cancelled"
    # A return_to outside the workspace is ignored.
    resent = post(
        staff_client,
        f"/staff/appointments/{appt.id}/resend-instructions",
        {"version": 2, "return_to": "https://evil.example/"},
    )
    assert resent.location.endswith(f"/staff/appointments/{appt.id}")


def test_the_panel_of_a_free_place_books_a_caller_and_blocks_with_a_reason(
    clinic: list[Location], staff_client: FlaskClient
) -> None:
    tomorrow = days_from_today(1)
    slot = slot_of(clinic[0], tomorrow, time(15))
    html = board(staff_client, tomorrow, slot=slot.id)
    panel = html[html.index('id="panel"') : html.index('id="board"')]
    assert "Book a caller here" in panel and "Reason to block" in panel
    back = f"/staff/calendar?view=day&date={tomorrow.isoformat()}&slot={slot.id}"
    response = post(
        staff_client,
        f"/staff/slots/{slot.id}/block",
        {"reason": "Doctor at conference", "return_to": back},
    )
    assert response.location.endswith(back)
    html = board(staff_client, tomorrow, slot=slot.id)
    assert "Closed: Doctor at conference" in grid_of(html)
    assert "Unblock this time" in html
    # A place inside the minimum notice (two hours) is not offered for booking.
    soon = slot_of(clinic[0], days_from_today(0), time(11))
    html = board(staff_client, days_from_today(0), slot=soon.id)
    assert "Too soon to book" in html and "Book a caller here" not in html
    # The booking form comes back to the board.
    form = staff_client.get(f"/staff/book/{slot.id}?return_to=/staff/calendar%3Fview%3Dday")
    assert 'name="return_to" value="/staff/calendar?view=day"' in form.get_data(as_text=True)


def test_the_day_board_takes_the_same_statements_for_3_or_40_appointments(
    clinic: list[Location], staff_client: FlaskClient
) -> None:
    quiet, busy = days_from_today(1), days_from_today(2)
    mornings = db.session.scalars(
        select(Slot)
        .where(
            Slot.starts_at >= local_instant(busy, time(0)),
            Slot.starts_at < local_instant(busy, time(13)),
        )
        .order_by(Slot.starts_at)
    ).all()
    for slot in mornings[:32]:
        make_appointment(slot)
    make_appointment(slot_of(clinic[0], quiet, time(9)))
    # A closure over bookings on each day: two bookings, then eight.
    for day, count in ((quiet, 2), (busy, 8)):
        for n in range(count):
            k = n // 2  # two places a slot, from 2:00 PM
            make_appointment(slot_of(clinic[1], day, time(14 + k // 2, 30 * (k % 2))))
        keep = db.session.scalars(
            select(Appointment.id)
            .join(Slot)
            .where(
                Slot.location_id == clinic[1].id,
                Slot.starts_at >= local_instant(day, time(14)),
                Slot.starts_at < local_instant(day, time(17)),
            )
        ).all()
        assert len(keep) == count
        assert close_afternoon(staff_client, clinic[1], day, keep).status_code == 302

    def statements(day: date, **args: Any) -> list[str]:
        with StatementCounter() as counter:
            board(staff_client, day, **args)
        return counter.statements

    few, many = statements(quiet), statements(busy)
    assert len(many) == len(few), "\n".join(many)
    # The account, the locations, the account's locations (scopes), slots, appointments,
    # closures, where the moved went, the closure texts, the version the poll compares with,
    # and the inbox's unread count in the navigation.
    assert len(many) == 10, "\n".join(many)
    appt = make_appointment(mornings[-1])
    # Opening the panel reads nothing more: it uses what the board loaded.
    assert len(statements(busy, appointment=appt.id)) == len(many)


def close_afternoon(
    client: FlaskClient, location: Location, day: date, keep: list[int], reason: str = ""
) -> Any:
    return post(
        client,
        f"/staff/locations/{location.slug}/exceptions",
        {
            "day": day.isoformat(),
            "kind": "closed",
            "start_time": "14:00",
            "end_time": "17:00",
            "reason": reason,
            "keep_ids": ",".join(str(i) for i in keep),
        },
    )


def test_the_version_endpoint_changes_with_an_online_booking_and_answers_304_otherwise(
    clinic: list[Location], staff_client: FlaskClient, client: FlaskClient
) -> None:
    tomorrow = days_from_today(1)
    url = f"/staff/calendar/version?date={tomorrow.isoformat()}"
    first = staff_client.get(url)
    assert first.status_code == 200 and first.is_json
    version = first.get_json()["version"]
    assert first.headers["ETag"] == f'"{version}"'
    same = staff_client.get(url, headers={"If-None-Match": f'"{version}"'})
    assert same.status_code == 304 and same.get_data() == b""
    html = board(staff_client, tomorrow)
    assert f'data-version="{version}"' in html
    assert f'data-version-url="{url}"' in html.replace("&amp;", "&")
    # A patient books online: the board's version moves, and the board shows them.
    appt = make_appointment(slot_of(clinic[2], tomorrow, time(10)), first_name="Online")
    changed = staff_client.get(url, headers={"If-None-Match": f'"{version}"'})
    assert changed.status_code == 200 and changed.get_json()["version"] != version
    assert "Online Garza" in board(staff_client, tomorrow)
    # ... and moves again when that booking changes status, or a place is blocked.
    after_booking = changed.get_json()["version"]
    from tests.factories import cancel

    cancel(appt)
    after_cancel = staff_client.get(url).get_json()["version"]
    assert after_cancel != after_booking
    # Another location's day does not move.
    other = f"/staff/calendar/version?date={tomorrow.isoformat()}&location=boerne"
    boerne_before = staff_client.get(other).get_json()["version"]
    make_appointment(slot_of(clinic[2], tomorrow, time(11)))
    assert staff_client.get(other).get_json()["version"] == boerne_before
    # Signed-out callers and bad input get no fingerprint.
    assert client.get(url).status_code in (302, 401)
    assert staff_client.get("/staff/calendar/version?date=2026-13-01").status_code == 400
    assert staff_client.get("/staff/calendar/version?location=nowhere").status_code == 404


def test_the_week_board_puts_locations_side_by_side_with_counts_that_open_the_day(
    clinic: list[Location], staff_client: FlaskClient
) -> None:
    monday = days_from_today(6)  # Monday 19 April
    assert monday.weekday() == 0
    make_appointment(slot_of(clinic[1], monday + timedelta(days=2), time(9)))
    html = staff_client.get(f"/staff/calendar?view=week&date={monday.isoformat()}").get_data(
        as_text=True
    )
    table = html[html.index('<table class="week-board">') :]
    assert table.count('scope="colgroup" colspan="5"') == 3  # three locations, Mon-Fri
    assert table.count('<tr>\n      <th scope="row" class="time">') == 18  # 8:00 to 4:30
    wednesday = (monday + timedelta(days=2)).isoformat()
    day_link = f'/staff/calendar?view=day&amp;date={wednesday}&amp;location=kerrville"'
    assert day_link in table
    label = '1/2<span class="visually-hidden"> booked, Kerrville, Wednesday 21, 9:00 AM:'
    assert label + " open that day's board</span>" in table
    assert ">0/2<span" in table
    assert "the day board of Wednesday, April 21, 2027 at Kerrville" in table


def test_the_week_board_takes_the_same_statements_for_any_number_of_appointments(
    clinic: list[Location], staff_client: FlaskClient
) -> None:
    first = days_from_today(6)
    second = first + timedelta(days=7)

    def statements(monday: date) -> list[str]:
        with StatementCounter() as counter:
            response = staff_client.get(f"/staff/calendar?view=week&date={monday.isoformat()}")
        assert response.status_code == 200
        return counter.statements

    empty = statements(first)
    slots = db.session.scalars(
        select(Slot)
        .where(Slot.starts_at >= local_instant(second, time(0)))
        .where(Slot.starts_at < local_instant(second + timedelta(days=5), time(0)))
        .order_by(Slot.starts_at)
    ).all()
    for slot in slots[::5][:50]:
        make_appointment(slot)
    busy = statements(second)
    assert len(busy) == len(empty) and len(busy) <= 8, busy


def test_a_closure_shows_its_reason_texts_the_patients_once_and_shows_who_moved(
    clinic: list[Location], staff_client: FlaskClient
) -> None:
    thursday = days_from_today(2)
    kerrville = clinic[1]
    rosa = make_appointment(slot_of(kerrville, thursday, time(14)), first_name="Rosa")
    luz = make_appointment(slot_of(kerrville, thursday, time(15)), first_name="Luz")
    quiet = make_appointment(
        slot_of(kerrville, thursday, time(16)), first_name="Noe", sms_consent=False
    )
    keep = [rosa.id, luz.id, quiet.id]
    # Without keeping them, nothing is saved and they are listed.
    refused = close_afternoon(staff_client, kerrville, thursday, [], "Doctor at conference")
    assert refused.status_code == 409
    # The list comes with one button that keeps them and saves the closure as typed.
    question = refused.get_data(as_text=True)
    keep_form = question[
        question.index("Nothing is saved yet") : question.index("Keep them and save")
    ]
    for field_value in (
        'name="start_time" value="14:00"',
        'name="end_time" value="17:00"',
        'name="reason" value="Doctor at conference"',
        'name="kind" value="closed"',
        f'name="day" value="{thursday.isoformat()}"',
        f'name="keep_ids" value="{",".join(str(i) for i in sorted(keep))}"',
    ):
        assert field_value in keep_form, field_value
    response = close_afternoon(staff_client, kerrville, thursday, keep, "Doctor at conference")
    # A closure with bookings leads to that day's board, where they are.
    assert response.status_code == 302
    assert f"date={thursday.isoformat()}&location=kerrville" in response.location
    html = board(staff_client, thursday, location="kerrville")
    grid = grid_of(html)
    assert "Closed: Doctor at conference" in grid
    assert "Outside opening hours" not in grid
    assert "Kerrville closed 2:00 PM–5:00 PM: Doctor at conference" in grid
    assert grid.count("not moved yet") == 3
    assert "Text 2 patients a link to choose a new time" in grid
    assert "no texts: call" in grid
    closure = db.session.scalar(select(ScheduleException))
    assert closure is not None
    # One action texts both who agreed to texts, through the outbox, with their manage link.
    response = post(staff_client, f"/staff/closures/{closure.id}/notify")
    assert response.status_code == 302
    page = staff_client.get(response.location).get_data(as_text=True)
    assert "2 patients will get a text to choose a new time." in page
    assert f"Call {quiet.reference}" in page
    for appt in (rosa, luz):
        notice = texts_of(appt)["closure_notice"]
        assert notice.status == "pending"
        assert f"/manage/{appt.reference}/" in notice.body
        assert "Kerrville" in notice.body and "Doctor" not in notice.body
    assert "closure_notice" not in texts_of(quiet)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "closure.notified"))
    assert entry is not None
    assert sorted(entry.details["sms_sent"]) == sorted([rosa.reference, luz.reference])
    assert entry.details["sms_no_consent"] == [quiet.reference]
    # A second click texts nobody twice.
    post(staff_client, f"/staff/closures/{closure.id}/notify")
    count = db.session.scalar(
        select(db.func.count(OutboundMessage.id)).where(OutboundMessage.kind == "closure_notice")
    )
    assert count == 2
    # Rosa moves (through her link): the board says so, and where to.
    new_slot = slot_of(kerrville, thursday + timedelta(days=1), time(9))
    db.session.expire_all()
    move(db.session.get(Appointment, rosa.id), new_slot.id)
    grid = grid_of(board(staff_client, thursday, location="kerrville"))
    closure_box = grid[: grid.index("</section>")]
    assert re.search(
        r"Rosa Garza</a>\s*<span class=\"chip status-rescheduled\">moved</span> to", closure_box
    )
    assert closure_box.count("not moved yet") == 2
    assert "texted a link (pending)" in closure_box
    assert "Text " not in closure_box  # nobody left to text


def test_closure_texts_respect_opt_out_and_spanish(
    clinic: list[Location], staff_client: FlaskClient
) -> None:
    from scheduler.database import unit_of_work
    from scheduler.models import utcnow
    from scheduler.sms.outbox import opt_out

    thursday = days_from_today(2)
    kerrville = clinic[1]
    stopped = make_appointment(slot_of(kerrville, thursday, time(14)))
    spanish = make_appointment(slot_of(kerrville, thursday, time(15)), language="es")
    with unit_of_work():
        opt_out(stopped.patient.phone, utcnow())
    close_afternoon(staff_client, kerrville, thursday, [stopped.id, spanish.id])
    closure = db.session.scalar(select(ScheduleException))
    assert closure is not None
    page = post(staff_client, f"/staff/closures/{closure.id}/notify", follow_redirects=True)
    assert f"Call {stopped.reference}" in page.get_data(as_text=True)
    assert "closure_notice" not in texts_of(stopped)
    body = texts_of(spanish)["closure_notice"].body
    assert "Elija otra hora" in body and f"/manage/{spanish.reference}/" in body


def test_a_closure_emails_those_who_gave_an_address_and_the_board_says_so(
    clinic: list[Location], staff_client: FlaskClient
) -> None:
    from scheduler.database import unit_of_work
    from scheduler.mail.outbox import unsubscribe
    from scheduler.models import utcnow
    from tests.factories import emails_of

    thursday = days_from_today(2)
    kerrville = clinic[1]
    both = make_appointment(
        slot_of(kerrville, thursday, time(14)), first_name="Rosa", email="rosa@example.com"
    )
    email_only = make_appointment(
        slot_of(kerrville, thursday, time(15)),
        first_name="Luz",
        sms_consent=False,
        email="luz@example.com",
    )
    gone = make_appointment(
        slot_of(kerrville, thursday, time(16)),
        first_name="Noe",
        sms_consent=False,
        email="noe@example.com",
    )
    with unit_of_work():
        unsubscribe("noe@example.com", utcnow())
    close_afternoon(staff_client, kerrville, thursday, [both.id, email_only.id, gone.id])
    grid = grid_of(board(staff_client, thursday, location="kerrville"))
    assert "Text or email 3 patients a link to choose a new time" in grid
    assert "no texts: email only" in grid
    closure = db.session.scalar(select(ScheduleException))
    assert closure is not None
    response = post(staff_client, f"/staff/closures/{closure.id}/notify")
    page = staff_client.get(response.location).get_data(as_text=True)
    assert "1 patient will get a text to choose a new time." in page
    assert "2 patients will get an email to choose a new time." in page
    assert f"Call {gone.reference}: no text or email reaches them." in page
    for appt in (both, email_only):
        email = emails_of(appt)["closure_notice"]
        assert email.status == "pending" and f"/manage/{appt.reference}/" in email.body
    assert emails_of(gone)["closure_notice"].status_reason == "unsubscribed"
    closure_box = grid_of(board(staff_client, thursday, location="kerrville"))
    closure_box = closure_box[: closure_box.index("</section>")]
    assert closure_box.count("emailed a link (pending)") == 2
    assert closure_box.count("texted a link (pending)") == 1
    assert "not emailed: unsubscribed" in closure_box
    assert "no texts: call" in closure_box  # Noe: nothing reaches them
    assert "a link to choose a new time</button>" not in closure_box  # nobody left
    # A second click emails nobody twice.
    again = post(staff_client, f"/staff/closures/{closure.id}/notify", follow_redirects=True)
    assert "2 had the email already." in again.get_data(as_text=True)
    count = db.session.scalar(
        select(db.func.count(OutboundMessage.id)).where(
            OutboundMessage.kind == "closure_notice", OutboundMessage.channel == "email"
        )
    )
    assert count == 3


def test_the_boards_and_the_notice_keep_to_the_accounts_locations(
    clinic: list[Location], staff_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    tomorrow = days_from_today(1)
    boerne, kerrville, _ = clinic
    there = make_appointment(slot_of(kerrville, tomorrow, time(14)), first_name="Hidden")
    close_afternoon(staff_client, kerrville, tomorrow, [there.id])
    closure = db.session.scalar(select(ScheduleException))
    assert closure is not None
    user = db.session.get(StaffUser, scheduler_user.id)
    assert user is not None
    user.locations = [boerne]
    db.session.commit()
    html = board(staff_client, tomorrow)
    assert '"loc-name">Boerne<' in html and "Kerrville" not in grid_of(html)
    assert "Hidden Garza" not in html
    assert staff_client.get("/staff/calendar?location=kerrville").status_code == 404
    week = staff_client.get("/staff/calendar?view=week").get_data(as_text=True)
    assert "kerrville" not in week
    assert (
        staff_client.get(
            f"/staff/calendar/version?date={tomorrow.isoformat()}&location=kerrville"
        ).status_code
        == 404
    )
    assert post(staff_client, f"/staff/closures/{closure.id}/notify").status_code == 404
    assert texts_of(there).get("closure_notice") is None


def test_the_manage_link_of_a_closed_visit_asks_for_a_new_time_in_the_patients_language(
    clinic: list[Location], staff_client: FlaskClient, client: FlaskClient
) -> None:
    from scheduler.appointments.links import manage_token

    thursday = days_from_today(2)
    kerrville = clinic[1]
    english = make_appointment(slot_of(kerrville, thursday, time(14)))
    spanish = make_appointment(slot_of(kerrville, thursday, time(15)), language="es")
    untouched = make_appointment(slot_of(kerrville, thursday, time(9)))
    close_afternoon(staff_client, kerrville, thursday, [english.id, spanish.id])
    closure = db.session.scalar(select(ScheduleException))
    assert closure is not None
    post(staff_client, f"/staff/closures/{closure.id}/notify")

    def manage_page(appt: Appointment) -> str:
        response = client.get(f"/manage/{appt.reference}/{manage_token(appt)}")
        assert response.status_code == 200
        return response.get_data(as_text=True)

    page = manage_page(english)
    assert "The clinic is closed at the time of your visit." in page
    assert "text asking you to choose a new time" in page
    page = manage_page(spanish)
    assert "La clínica está cerrada a la hora de su cita." in page
    assert "mensaje para elegir otra hora" in page
    assert 'id="closed-notice"' not in manage_page(untouched)


@pytest.mark.parametrize(
    ("sunday", "labels"),
    [
        # Fall back: 1:00 and 1:30 happen twice; each is one slot, at its first occurrence.
        (
            date(2027, 11, 7),
            ["12:00 AM", "12:30 AM", "1:00 AM", "1:30 AM", "2:00 AM", "2:30 AM", "3:00 AM"],
        ),
        # Spring forward: 2:00 and 2:30 never happen.
        (date(2027, 3, 14), ["12:00 AM", "12:30 AM", "1:00 AM", "1:30 AM", "3:00 AM"]),
    ],
)
def test_the_boards_on_dst_nights_show_each_wall_time_once(
    clinic: list[Location], staff_client: FlaskClient, sunday: date, labels: list[str]
) -> None:
    from scheduler.availability.operations import sync_slots
    from scheduler.database import unit_of_work

    boerne = clinic[0]
    boerne.exceptions.append(
        ScheduleException(
            day=sunday,
            kind="extra",
            start_time=time(0),
            end_time=time(3, 30),
            slot_minutes=30,
            capacity=1,
        )
    )
    db.session.commit()
    with unit_of_work():
        sync_slots(boerne, sunday, sunday)
    grid = grid_of(board(staff_client, sunday, location="boerne", earlier=1))
    shown = re.findall(r'<th scope="row" class="time">([^<]+)</th>', grid)
    assert shown == labels
    version = staff_client.get(f"/staff/calendar/version?date={sunday.isoformat()}&location=boerne")
    assert version.status_code == 200
    week = staff_client.get(
        f"/staff/calendar?view=week&date={sunday.isoformat()}&location=boerne"
    ).get_data(as_text=True)
    rows = re.findall(r'<th scope="row" class="time">([^<]+)</th>', week)
    assert rows == labels  # that week has no other slots (beyond the rolled horizon)
