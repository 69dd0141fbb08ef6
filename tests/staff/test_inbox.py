"""Patients' free-text replies: the inbox per location, its unread count, marking replies
handled (audited, safe when two colleagues click at once), and answering from the thread
through the outbox under consent, STOP, sending hours and the per-number cap."""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.models import (
    Appointment,
    AuditEntry,
    InboundMessage,
    Location,
    OutboundMessage,
    StaffUser,
    utcnow,
)
from scheduler.sms.replies import Inbound, handle_inbound
from scheduler.staff.inbox import (
    UNMATCHED,
    inbox_replies,
    reply_digest,
    reply_visible,
    set_handled,
    unread_by_location,
    unread_count,
)
from tests.factories import CHICAGO, make_appointment, make_location, make_slot, new_phone
from tests.staff.conftest import CSRF, PASSWORD, make_staff, post

_sids = iter(range(1, 1_000_000))
TUESDAY_NIGHT = datetime(2027, 4, 13, 22, 0, tzinfo=CHICAGO)


def text_in(phone: str, body: str) -> str | None:
    """A patient's text arriving (what the webhook does once its signature is checked)."""
    sid = f"SM{next(_sids):032x}"
    return handle_inbound(Inbound(sid, phone, "+12105550100", body), utcnow())


def inbound(body: str) -> InboundMessage:
    row = db.session.scalar(
        select(InboundMessage)
        .where(InboundMessage.body == body)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


def staff_replies(appt: Appointment) -> list[OutboundMessage]:
    return list(
        db.session.scalars(
            select(OutboundMessage)
            .where(
                OutboundMessage.appointment_id == appt.id,
                OutboundMessage.kind.like("staff_reply#%"),
            )
            .order_by(OutboundMessage.id)
            .execution_options(populate_existing=True)
        )
    )


def audits(action: str) -> list[AuditEntry]:
    return list(
        db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
    )


def unread_badge(html: str) -> int | None:
    found = re.search(r'id="inbox-unread">(\d+)<', html)
    return int(found.group(1)) if found else None


@pytest.fixture
def two_locations(app: Flask) -> tuple[Location, Location]:
    return (
        make_location(slug="kerrville", name="Kerrville"),
        make_location(slug="boerne", name="Boerne"),
    )


@pytest.mark.clock
def test_a_free_text_reply_lands_in_its_locations_inbox_with_the_unread_count(
    staff_client: FlaskClient, two_locations: tuple[Location, Location]
) -> None:
    kerrville, boerne = two_locations
    phone = new_phone()
    appt = make_appointment(make_slot(kerrville, days_ahead=2), phone=phone)
    make_appointment(make_slot(boerne, days_ahead=2))

    answer = text_in(phone, "Running 10 min late, sorry")
    assert answer is not None and "will read your message during office hours" in answer
    assert "can't read" not in answer
    assert inbound("Running 10 min late, sorry").appointment_id == appt.id

    page = staff_client.get("/staff/inbox?location=kerrville").get_data(as_text=True)
    assert "Running 10 min late, sorry" in page
    assert f'href="/staff/appointments/{appt.id}' in page  # its appointment
    assert appt.patient.full_name in page
    assert unread_badge(page) == 1
    other = staff_client.get("/staff/inbox?location=boerne").get_data(as_text=True)
    assert "Running 10 min late" not in other
    assert "No replies here." in other
    assert staff_client.get("/staff/inbox?location=nowhere").status_code == 404
    # The badge is on every staff page.
    assert unread_badge(staff_client.get("/staff/appointments").get_data(as_text=True)) == 1


@pytest.mark.clock
def test_keywords_are_not_in_the_inbox(
    staff_client: FlaskClient, two_locations: tuple[Location, Location]
) -> None:
    phone = new_phone()
    make_appointment(make_slot(two_locations[0], days_ahead=2), phone=phone)
    for word in ("C", "help", " Stop. ", "START", "R"):
        text_in(phone, word)
    assert unread_count(None) == 0
    page = staff_client.get("/staff/inbox").get_data(as_text=True)
    assert "No replies here." in page
    assert unread_badge(page) is None


@pytest.mark.clock
def test_spanish_speakers_are_told_in_spanish_that_the_clinic_reads_their_message(
    app: Flask,
) -> None:
    phone = new_phone()
    make_appointment(make_slot(days_ahead=2), phone=phone, language="es")
    answer = text_in(phone, "¿Puedo llevar a mi esposo?")
    assert answer is not None
    assert "va a leer su mensaje en horario de oficina" in answer
    assert "no podemos leer" not in answer


@pytest.mark.clock
def test_replies_about_no_visit_are_unmatched_and_seen_only_without_a_scope(
    admin_client: FlaskClient, two_locations: tuple[Location, Location]
) -> None:
    kerrville, boerne = two_locations
    at_kerrville, at_boerne = new_phone(), new_phone()
    make_appointment(make_slot(kerrville, days_ahead=2), phone=at_kerrville)
    make_appointment(make_slot(boerne, days_ahead=2), phone=at_boerne)
    text_in(at_kerrville, "Can I bring my wife?")
    text_in(at_boerne, "Is there parking?")
    text_in(new_phone(), "Who is this?")  # nobody's visit

    assert inbound("Who is this?").appointment_id is None
    assert unread_count(None) == 3
    assert unread_by_location(None) == {kerrville.id: 1, boerne.id: 1, None: 1}
    unmatched = admin_client.get("/staff/inbox?location=unmatched").get_data(as_text=True)
    assert "Who is this?" in unmatched and "Is there parking?" not in unmatched
    assert "Find patients with" in unmatched

    # An account scoped to Kerrville (scopes.location_ids_for returns its ids): its count,
    # its list and what it may open leave out Boerne and the unmatched reply.
    scope = frozenset({kerrville.id})
    assert unread_count(scope) == 1
    assert unread_by_location(scope) == {kerrville.id: 1}
    assert [m.body for m in inbox_replies(scope, None)] == ["Can I bring my wife?"]
    assert inbox_replies(scope, UNMATCHED) == []
    assert inbox_replies(scope, boerne.id) == []
    assert not reply_visible(scope, inbound("Is there parking?"))
    assert not reply_visible(scope, inbound("Who is this?"))
    assert reply_visible(scope, inbound("Can I bring my wife?"))
    assert reply_visible(None, inbound("Who is this?"))


@pytest.mark.clock
def test_unhandled_come_first_then_newest_first(
    staff_client: FlaskClient, clock: Any, two_locations: tuple[Location, Location]
) -> None:
    phone = new_phone()
    make_appointment(make_slot(two_locations[0], days_ahead=2), phone=phone)
    text_in(phone, "first message")
    clock.shift(timedelta(minutes=5))
    text_in(phone, "second message")
    clock.shift(timedelta(minutes=5))
    text_in(phone, "third message")
    first = inbound("first message")
    post(
        staff_client,
        f"/staff/inbox/{inbound('third message').id}/handled",
        {"version": "1", "handled": "yes"},
    )
    assert [m.body for m in inbox_replies(None, None)] == [
        "second message",
        "first message",
        "third message",
    ]
    page = staff_client.get("/staff/inbox").get_data(as_text=True)
    assert page.index("second message") < page.index("first message") < page.index("third")
    assert first.handled_at is None


@pytest.mark.clock
def test_marking_a_reply_handled_and_unread_is_audited_and_idempotent(
    staff_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    phone = new_phone()
    appt = make_appointment(make_slot(days_ahead=2), phone=phone)
    text_in(phone, "Do I need to fast?")
    message = inbound("Do I need to fast?")
    path = f"/staff/inbox/{message.id}/handled"

    done = post(staff_client, path, {"version": "1", "handled": "yes", "return_to": "/staff/"})
    assert done.status_code == 302 and done.headers["Location"].endswith("/staff/")
    message = inbound("Do I need to fast?")
    assert message.handled_at is not None and message.handled_by_id == scheduler_user.id
    assert message.version == 2
    [entry] = audits("inbox.reply_handled")
    assert (entry.target_id, entry.target_label, entry.actor) == (
        message.id,
        appt.reference,
        scheduler_user.email,
    )
    assert "Do I need to fast" not in str(entry.details)  # the patient's words stay out

    # A colleague's click from the same (older) page: no error, no second entry.
    again = post(staff_client, path, {"version": "1", "handled": "yes"}, follow_redirects=True)
    assert "already marked handled by front@clinic.test" in again.get_data(as_text=True)
    assert len(audits("inbox.reply_handled")) == 1
    # Marking unread from a page older than the change: refused, not overwritten.
    stale = post(staff_client, path, {"version": "1", "handled": "no"}, follow_redirects=True)
    assert "Someone changed this reply" in stale.get_data(as_text=True)
    assert inbound("Do I need to fast?").handled_at is not None
    post(staff_client, path, {"version": "2", "handled": "no"})
    message = inbound("Do I need to fast?")
    assert (message.handled_at, message.handled_by_id, message.version) == (None, None, 3)
    assert len(audits("inbox.reply_unhandled")) == 1

    assert post(staff_client, path, {"version": "3", "handled": "maybe"}).status_code == 400
    assert post(staff_client, path, {"version": "x", "handled": "yes"}).status_code == 400
    assert post(staff_client, "/staff/inbox/999999/handled", {"version": "1"}).status_code == 404


@pytest.mark.clock
def test_two_colleagues_marking_at_once_both_succeed_once(
    app: Flask, staff_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    phone = new_phone()
    make_appointment(make_slot(days_ahead=2), phone=phone)
    text_in(phone, "Thanks!")
    seen = inbound("Thanks!")  # as the second colleague's page loaded it: unread, version 1
    post(staff_client, f"/staff/inbox/{seen.id}/handled", {"version": "1", "handled": "yes"})
    assert seen.handled_at is None  # not reloaded: the second click comes from that page
    with unit_of_work():
        assert set_handled(seen, True, 1, scheduler_user, utcnow()) is False
    assert seen.handled_at is not None
    assert len(audits("inbox.reply_handled")) == 1


@pytest.mark.clock
def test_answering_queues_a_text_through_the_outbox_and_marks_the_reply_handled(
    staff_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    phone = new_phone()
    appt = make_appointment(make_slot(days_ahead=2), phone=phone)
    text_in(phone, "Can I bring my wife?")
    page = staff_client.get(f"/staff/appointments/{appt.id}").get_data(as_text=True)
    assert "<strong>unread</strong>" in page
    assert 'name="body"' in page and "Send reply" in page

    sent = post(
        staff_client,
        f"/staff/appointments/{appt.id}/reply",
        {"body": "Yes, of course. See you Thursday!", "mark_handled": "y"},
        follow_redirects=True,
    )
    assert "The reply is on its way to the patient." in sent.get_data(as_text=True)
    [text] = staff_replies(appt)
    assert (text.kind, text.status, text.to_phone) == ("staff_reply#1", "pending", phone)
    assert text.body == "Yes, of course. See you Thursday!"
    assert text.author_id == scheduler_user.id
    thread = sent.get_data(as_text=True)
    assert "reply by front@clinic.test · pending" in thread
    assert abs(text.due_at - utcnow()) < timedelta(minutes=1)
    assert inbound("Can I bring my wife?").handled_by_id == scheduler_user.id
    [entry] = audits("appointment.text_reply")
    assert (entry.target_id, entry.details["segments"]) == (appt.id, 1)
    assert "wife" not in str(entry.details) and "Thursday" not in str(entry.details)
    assert len(audits("inbox.reply_handled")) == 1
    assert unread_count(None) == 0

    post(staff_client, f"/staff/appointments/{appt.id}/reply", {"body": "One more thing."})
    assert [t.kind for t in staff_replies(appt)] == ["staff_reply#1", "staff_reply#2"]


@pytest.mark.clock
def test_the_reply_can_leave_the_patients_reply_unread(staff_client: FlaskClient) -> None:
    phone = new_phone()
    appt = make_appointment(make_slot(days_ahead=2), phone=phone)
    text_in(phone, "Where do I park?")
    post(staff_client, f"/staff/appointments/{appt.id}/reply", {"body": "Behind the building."})
    assert len(staff_replies(appt)) == 1
    message = inbound("Where do I park?")
    assert message.handled_at is None
    # Marked handled from the thread itself, back to the thread.
    page = staff_client.get(f"/staff/appointments/{appt.id}").get_data(as_text=True)
    assert f'action="/staff/inbox/{message.id}/handled"' in page
    done = post(
        staff_client,
        f"/staff/inbox/{message.id}/handled",
        {"version": "1", "handled": "yes", "return_to": f"/staff/appointments/{appt.id}#texts"},
    )
    assert done.headers["Location"].endswith(f"/staff/appointments/{appt.id}")
    assert inbound("Where do I park?").handled_at is not None


@pytest.mark.clock(TUESDAY_NIGHT)
def test_a_reply_written_at_night_waits_for_the_morning_and_the_page_says_so(
    staff_client: FlaskClient,
) -> None:
    phone = new_phone()
    appt = make_appointment(make_slot(days_ahead=2), phone=phone)
    page = staff_client.get(f"/staff/appointments/{appt.id}").get_data(as_text=True)
    assert "It is outside sending hours: a reply sent now waits until" in page
    done = post(
        staff_client,
        f"/staff/appointments/{appt.id}/reply",
        {"body": "We open at 8."},
        follow_redirects=True,
    )
    [text] = staff_replies(appt)
    morning = datetime(2027, 4, 14, 8, 0, tzinfo=CHICAGO).astimezone(UTC)
    assert text.due_at == morning
    assert "the reply waits and goes out" in done.get_data(as_text=True)
    assert "8:00 AM" in done.get_data(as_text=True)


@pytest.mark.clock(datetime(2027, 3, 13, 22, 30, tzinfo=CHICAGO))  # the night clocks go forward
def test_a_reply_written_on_the_night_of_the_dst_change_goes_at_8_central_daylight_time(
    staff_client: FlaskClient,
) -> None:
    appt = make_appointment(make_slot(days_ahead=3))
    post(staff_client, f"/staff/appointments/{appt.id}/reply", {"body": "Noted, thank you."})
    [text] = staff_replies(appt)
    assert text.due_at == datetime(2027, 3, 14, 13, 0, tzinfo=UTC)  # 8:00 CDT, UTC-5
    assert text.due_at.astimezone(CHICAGO).hour == 8


@pytest.mark.clock
def test_no_reply_to_a_number_that_said_stop_or_a_patient_without_consent(
    staff_client: FlaskClient,
) -> None:
    phone = new_phone()
    appt = make_appointment(make_slot(days_ahead=2), phone=phone)
    text_in(phone, "STOP")
    page = staff_client.get(f"/staff/appointments/{appt.id}").get_data(as_text=True)
    assert "This number replied STOP" in page and "Send reply" not in page
    refused = post(staff_client, f"/staff/appointments/{appt.id}/reply", {"body": "Hello?"})
    assert refused.status_code == 409
    assert "This number replied STOP" in refused.get_data(as_text=True)
    assert staff_replies(appt) == []

    quiet = make_appointment(make_slot(days_ahead=2), sms_consent=False)
    page = staff_client.get(f"/staff/appointments/{quiet.id}").get_data(as_text=True)
    assert "did not agree to texts: call them" in page
    refused = post(staff_client, f"/staff/appointments/{quiet.id}/reply", {"body": "Hello?"})
    assert refused.status_code == 409
    assert staff_replies(quiet) == []


@pytest.mark.clock
def test_the_per_number_cap_holds_for_staff_replies(app: Flask, staff_client: FlaskClient) -> None:
    app.config["SMS_MAX_PER_NUMBER_PER_DAY"] = 3
    phone = new_phone()
    appt = make_appointment(make_slot(days_ahead=2), phone=phone)
    text_in(phone, "Hi")  # answered automatically: one of the three
    for n in (1, 2):
        assert (
            post(
                staff_client, f"/staff/appointments/{appt.id}/reply", {"body": f"Answer {n}"}
            ).status_code
            == 302
        )
    refused = post(staff_client, f"/staff/appointments/{appt.id}/reply", {"body": "Answer 3"})
    assert refused.status_code == 409
    assert "has had its 3 texts for the last 24 hours" in refused.get_data(as_text=True)
    assert [t.body for t in staff_replies(appt)] == ["Answer 1", "Answer 2"]


@pytest.mark.clock
def test_a_reply_longer_than_three_text_messages_is_refused(staff_client: FlaskClient) -> None:
    appt = make_appointment(make_slot(days_ahead=2))
    long = post(staff_client, f"/staff/appointments/{appt.id}/reply", {"body": "x" * 460})
    assert long.status_code == 409
    assert "4 text messages long" in long.get_data(as_text=True)
    accented = post(staff_client, f"/staff/appointments/{appt.id}/reply", {"body": "á" * 202})
    assert accented.status_code == 409 and "UCS-2" in accented.get_data(as_text=True)
    empty = post(staff_client, f"/staff/appointments/{appt.id}/reply", {"body": "  \r\n "})
    assert empty.status_code == 409 and "Write the reply first." in empty.get_data(as_text=True)
    huge = post(staff_client, f"/staff/appointments/{appt.id}/reply", {"body": "y" * 1001})
    assert huge.status_code == 422
    assert staff_replies(appt) == []
    assert (
        post(staff_client, f"/staff/appointments/{appt.id}/reply", {"body": "x" * 459}).status_code
        == 302
    )


@pytest.mark.clock
def test_health_details_ask_for_a_confirmation_first(staff_client: FlaskClient) -> None:
    appt = make_appointment(make_slot(days_ahead=2), date_of_birth=date(1956, 4, 2))
    path = f"/staff/appointments/{appt.id}/reply"
    body = "Dr. Ruiz says your stenosis is why we suggest the MILD procedure. DOB 4/2/1956?"
    warned = post(staff_client, path, {"body": body})
    html = warned.get_data(as_text=True)
    assert warned.status_code == 200
    assert "Check before sending" in html and "Send anyway" in html
    assert "It names a diagnosis (“stenosis”)" in html
    assert html.count(body) == 1  # in the reply box only, not in the note box
    assert "It names the procedure (“MILD”)" in html
    assert "the patient&#39;s date of birth (“4/2/1956”)" in html
    assert f'value="{reply_digest(body)}"' in html
    assert staff_replies(appt) == []

    # Edited after the warning: checked again.
    edited = "Your sciatica should be checked at the visit."
    again = post(staff_client, path, {"body": edited, "warned_for": reply_digest(body)})
    assert "It names a diagnosis (“sciatica”)" in again.get_data(as_text=True)
    assert staff_replies(appt) == []
    # Sent anyway: the text as warned about.
    post(staff_client, path, {"body": edited, "warned_for": reply_digest(edited)})
    assert [t.body for t in staff_replies(appt)] == [edited]


def test_a_reply_after_the_visit_is_filed_under_that_visit(app: Flask) -> None:
    phone = new_phone()
    slot = make_slot(days_ahead=1)
    appt = make_appointment(slot, phone=phone)
    later = slot.starts_at + timedelta(days=2)
    handle_inbound(Inbound("SMafter", phone, "+12105550100", "Thank you doctor"), later)
    assert inbound("Thank you doctor").appointment_id == appt.id
    long_after = slot.starts_at + timedelta(days=30)
    handle_inbound(Inbound("SMlong", phone, "+12105550100", "Hello again"), long_after)
    assert inbound("Hello again").appointment_id is None


def test_the_inbox_reads_in_a_fixed_number_of_statements(
    app: Flask, staff_client: FlaskClient
) -> None:
    location = make_location()
    for hour in range(9, 13):
        phone = new_phone()
        make_appointment(make_slot(location, days_ahead=2, at=time(hour)), phone=phone)
        text_in(phone, "a question")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        first = staff_client.get("/staff/inbox")
        few = len(statements)
        for hour in range(9, 13):
            phone = new_phone()
            make_appointment(make_slot(location, days_ahead=3, at=time(hour)), phone=phone)
            text_in(phone, "another question")
        statements.clear()
        second = staff_client.get("/staff/inbox")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert first.status_code == second.status_code == 200
    assert second.get_data(as_text=True).count("another question") == 4
    assert len(statements) == few


@pytest.mark.clock
def test_the_live_check_counts_text_messages_and_warns_as_staff_type(
    staff_client: FlaskClient,
) -> None:
    appt = make_appointment(make_slot(days_ahead=2))
    path = f"/staff/appointments/{appt.id}/reply/check"
    plain = post(staff_client, path, {"body": "See you soon"}).get_json()
    assert plain == {
        "ok": True,
        "characters": 12,
        "segments": 1,
        "encoding": "GSM-7",
        "too_long": False,
        "warnings": [],
    }
    risky = post(staff_client, path, {"body": "ciática " * 30}).get_json()
    assert risky["encoding"] == "UCS-2" and risky["segments"] == 4 and risky["too_long"]
    assert risky["warnings"] == ["It names a diagnosis (“ciatica”)."]
    assert post(staff_client, path, {"body": "x" * 1001}).status_code == 400
    assert staff_replies(appt) == []


def test_colleagues_marking_the_same_reply_at_the_same_moment_all_see_it_handled(
    app: Flask, live_server: str
) -> None:
    """Real concurrent requests (threads of a live server): none errs, one audit entry."""
    app.config["SESSION_COOKIE_SECURE"] = False  # plain HTTP to 127.0.0.1 (requests is strict)
    phone = new_phone()
    make_appointment(make_slot(days_ahead=2), phone=phone)
    text_in(phone, "On my way")
    message_id = inbound("On my way").id
    sessions = []
    for n in range(4):
        user = make_staff(f"desk{n}@clinic.test")
        session = requests.Session()
        token = CSRF.search(session.get(live_server + "/staff/login", timeout=30).text)
        assert token is not None
        signed = session.post(
            live_server + "/staff/login",
            data={"email": user.email, "password": PASSWORD, "csrf_token": token.group(1)},
            timeout=30,
        )
        assert signed.status_code == 200 and "/staff/login" not in signed.url
        page_token = CSRF.search(session.get(live_server + "/staff/inbox", timeout=30).text)
        assert page_token is not None
        sessions.append((session, page_token.group(1)))
    barrier = threading.Barrier(len(sessions))
    pages: list[tuple[int, str]] = []

    def mark(session: requests.Session, token: str) -> None:
        barrier.wait()
        response = session.post(
            f"{live_server}/staff/inbox/{message_id}/handled",
            data={"csrf_token": token, "version": "1", "handled": "yes"},
            timeout=30,
        )
        pages.append((response.status_code, response.text))

    threads = [threading.Thread(target=mark, args=pair) for pair in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in pages] == [200] * len(sessions)
    marked = [text for _, text in pages if "The reply is marked handled." in text]
    already = [text for _, text in pages if "already marked handled by desk" in text]
    assert (len(marked), len(already)) == (1, len(sessions) - 1)
    db.session.remove()
    assert len(audits("inbox.reply_handled")) == 1
    assert inbound("On my way").version == 2
