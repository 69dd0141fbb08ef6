"""What the front desk does to appointments: book, mark, cancel, move, note, resend; audited."""

from __future__ import annotations

import re
import secrets
import threading
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from scheduler.appointments.lifecycle import PATIENT_WEB, Actor, ActorKind
from scheduler.appointments.operations import BookingError
from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.models import (
    Appointment,
    AppointmentEvent,
    AuditEntry,
    OutboundMessage,
    Slot,
    StaffUser,
    utcnow,
)
from scheduler.staff.operations import mark_appointment
from tests.factories import (
    CHICAGO,
    add_message_schedules,
    book,
    booking_request,
    make_appointment,
    make_location,
    make_slot,
    texts_of,
)
from tests.staff.conftest import appointment_today, make_staff, post, sign_in


def notices(response: Any) -> list[str]:
    return re.findall(r'notice-\w+" role="status">([^<]*)', response.get_data(as_text=True))


def fresh(appt: Appointment) -> Appointment:
    db.session.remove()
    found = db.session.get(Appointment, appt.id)
    assert found is not None
    return found


def audits(action: str) -> list[AuditEntry]:
    db.session.remove()
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def caller(**overrides: str) -> dict[str, str]:
    return {
        "submission_id": secrets.token_urlsafe(18),
        "first_name": "Ofelia",
        "last_name": "Castañeda",
        "phone": "(830) 257-4811",
        "date_of_birth": "1949-07-30",
        "language": "es",
        "sms_consent": "y",
        "conservative_treatment_8_weeks": "not_sure",
        **overrides,
    }


def test_booking_a_caller_uses_the_online_rules_and_is_audited(
    app: Flask, staff_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    add_message_schedules()
    slot = make_slot(days_ahead=5)
    bad = post(staff_client, f"/staff/book/{slot.id}", {"slot_id": slot.id, **caller(phone="123")})
    assert bad.status_code == 422
    assert "valid US mobile number" in bad.get_data(as_text=True)
    response = post(staff_client, f"/staff/book/{slot.id}", {"slot_id": slot.id, **caller()})
    assert response.status_code == 302
    appt = db.session.scalar(select(Appointment).where(Appointment.source == "staff"))
    assert appt.patient.last_name == "Castañeda" and appt.patient.phone == "+18302574811"
    assert appt.patient.sms_consent_source == "staff"
    assert set(texts_of(appt)) == {"confirmation", "instructions", "reminder"}
    [entry] = audits("appointment.booked")
    assert (entry.actor, entry.target_id, entry.target_label) == (
        scheduler_user.email,
        appt.id,
        appt.reference,
    )
    assert "Castañeda" not in str(entry.details)


def test_a_double_click_books_the_caller_once(app: Flask, staff_client: FlaskClient) -> None:
    slot = make_slot(days_ahead=5)
    form = {"slot_id": slot.id, **caller()}
    first = post(staff_client, f"/staff/book/{slot.id}", form)
    second = post(staff_client, f"/staff/book/{slot.id}", form)
    assert first.headers["Location"] == second.headers["Location"]
    assert db.session.scalar(select(func.count(Appointment.id))) == 1


def test_booking_a_full_slot_says_so(app: Flask, staff_client: FlaskClient) -> None:
    slot = make_slot(days_ahead=5, capacity=1)
    make_appointment(slot)
    response = post(staff_client, f"/staff/book/{slot.id}", {"slot_id": slot.id, **caller()})
    assert response.status_code == 409
    assert "just booked by someone else" in response.get_data(as_text=True)


def test_marking_arrived_and_no_show_is_versioned_and_audited(
    app: Flask, staff_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    appt = appointment_today()
    page = staff_client.get(f"/staff/appointments/{appt.id}").get_data(as_text=True)
    assert "Mark arrived" in page and "Mark no-show" in page
    done = post(staff_client, f"/staff/appointments/{appt.id}/mark/arrived", {"version": "1"})
    assert done.status_code == 302
    assert fresh(appt).status == "arrived"
    # A colleague's page still showed version 1.
    stale = post(
        staff_client,
        f"/staff/appointments/{appt.id}/mark/no_show",
        {"version": "1"},
        follow_redirects=True,
    )
    assert "Someone else changed this appointment" in " ".join(notices(stale))
    assert fresh(appt).status == "arrived"
    post(staff_client, f"/staff/appointments/{appt.id}/mark/completed", {"version": "2"})
    assert fresh(appt).status == "completed"
    events = db.session.scalars(
        select(AppointmentEvent.to_status).where(
            AppointmentEvent.actor == f"staff:{scheduler_user.id}"
        )
    ).all()
    assert events == ["arrived", "completed"]
    assert [e.details for e in audits("appointment.arrived")] == [
        {"from_status": "booked", "to_status": "arrived"}
    ]
    refused = post(
        staff_client,
        f"/staff/appointments/{appt.id}/mark/cancelled",
        {"version": "3"},
        follow_redirects=True,
    )
    assert "not something the front desk can mark" in " ".join(notices(refused))


def test_marks_wait_for_the_visit_and_stop_its_pending_texts(
    app: Flask, staff_client: FlaskClient
) -> None:
    add_message_schedules()
    tomorrow = make_appointment(make_slot(days_ahead=1))
    early = post(
        staff_client,
        f"/staff/appointments/{tomorrow.id}/mark/no_show",
        {"version": "1"},
        follow_redirects=True,
    )
    assert "only once the visit time has come" in " ".join(notices(early))
    assert "Mark arrived" not in staff_client.get(f"/staff/appointments/{tomorrow.id}").get_data(
        as_text=True
    )
    assert fresh(tomorrow).status == "booked"
    today = appointment_today()
    post(staff_client, f"/staff/appointments/{today.id}/mark/no_show", {"version": "1"})
    assert fresh(today).status == "no_show"
    assert {t.status for t in texts_of(today).values() if t.kind != "confirmation"} <= {
        "cancelled",
        "suppressed",
    }


def test_cancel_and_reschedule_by_staff(
    app: Flask, staff_client: FlaskClient, scheduler_user: StaffUser
) -> None:
    add_message_schedules()
    appt = make_appointment(make_slot(days_ahead=6))
    elsewhere = make_slot(make_location(name="Kerrville"), days_ahead=8)
    moved = post(
        staff_client, f"/staff/appointments/{appt.id}/reschedule/{elsewhere.id}", {"version": "1"}
    )
    assert moved.status_code == 302
    new = db.session.scalar(select(Appointment).where(Appointment.rescheduled_from_id == appt.id))
    assert moved.headers["Location"].endswith(f"/staff/appointments/{new.id}")
    assert fresh(appt).status == "rescheduled"
    assert set(texts_of(new)) == {"rescheduled", "instructions", "reminder"}
    [entry] = audits("appointment.moved")
    assert entry.details["new_reference"] == new.reference
    # The old page's cancel button is stale now.
    stale = post(
        staff_client,
        f"/staff/appointments/{appt.id}/cancel",
        {"version": "1", "confirm": "yes"},
        follow_redirects=True,
    )
    assert "Someone else changed" in " ".join(notices(stale))
    post(staff_client, f"/staff/appointments/{new.id}/cancel", {"version": "1", "confirm": "yes"})
    assert fresh(new).status == "cancelled"
    assert texts_of(new)["cancellation"].status == "pending"
    assert [e.target_label for e in audits("appointment.cancelled")] == [new.reference]


def test_notes_are_private_and_audited_without_their_text(
    app: Flask, staff_client: FlaskClient
) -> None:
    appt = make_appointment(make_slot(days_ahead=3))
    post(
        staff_client,
        f"/staff/appointments/{appt.id}/notes",
        {"version": "1", "body": "Prefers mornings"},
    )
    page = staff_client.get(f"/staff/appointments/{appt.id}").get_data(as_text=True)
    assert "Prefers mornings" in page
    [entry] = audits("appointment.note")
    assert "Prefers" not in str(entry.details) + entry.note
    empty = post(
        staff_client,
        f"/staff/appointments/{appt.id}/notes",
        {"version": "1", "body": ""},
        follow_redirects=True,
    )
    assert "needs some text" in " ".join(notices(empty))


def test_resending_instructions_queues_another_text(app: Flask, staff_client: FlaskClient) -> None:
    add_message_schedules()
    appt = make_appointment(make_slot(days_ahead=9))
    for _ in range(2):
        post(staff_client, f"/staff/appointments/{appt.id}/resend-instructions", {"version": "1"})
    kinds = db.session.scalars(
        select(OutboundMessage.kind).where(OutboundMessage.appointment_id == appt.id)
    ).all()
    assert sorted(kinds) == [
        "confirmation",
        "instructions",
        "instructions#2",
        "instructions#3",
        "reminder",
    ]
    assert len(audits("appointment.resend_instructions")) == 2
    silent = make_appointment(make_slot(days_ahead=9), sms_consent=False)
    response = post(
        staff_client,
        f"/staff/appointments/{silent.id}/resend-instructions",
        {"version": "1"},
        follow_redirects=True,
    )
    assert "did not agree to texts" in " ".join(notices(response))


def test_find_by_name_phone_reference_or_date(app: Flask, staff_client: FlaskClient) -> None:
    slot = make_slot(days_ahead=4)
    appt = make_appointment(slot, first_name="Imelda", last_name="Ochoa", phone="+18305550142")
    make_appointment(make_slot(days_ahead=5), first_name="Other", last_name="Person")
    for query in (
        "imelda",
        "Ochoa",
        "Imelda Ochoa",
        "555-0142",
        appt.reference.lower(),
    ):
        html = staff_client.get("/staff/appointments", query_string={"q": query}).get_data(
            as_text=True
        )
        assert "Imelda Ochoa" in html, query
        assert "Other Person" not in html, query
    day = slot.starts_at.astimezone(CHICAGO).date()
    html = staff_client.get("/staff/appointments", query_string={"date": day.isoformat()}).get_data(
        as_text=True
    )
    assert "Imelda Ochoa" in html and "Other Person" not in html


def test_admins_change_roles_and_passwords(app: Flask, admin_client: FlaskClient) -> None:
    desk = make_staff("desk@freedomspine.com")
    client = app.test_client()
    sign_in(client, desk)
    form = {f"a{desk.id}-role": "admin", f"a{desk.id}-password": "a brand new passphrase"}
    assert post(admin_client, f"/staff/users/{desk.id}", form).status_code == 302
    db.session.remove()
    changed = db.session.get(StaffUser, desk.id)
    assert changed.role == "admin"
    assert client.get("/staff/dashboard").status_code == 302  # its old session ended
    assert sign_in(client, changed, "a brand new passphrase").status_code == 302
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "staff.edit"))
    assert entry.details == {"role": {"from": "scheduler", "to": "admin"}, "password": "changed"}
    short = post(
        admin_client,
        f"/staff/users/{desk.id}",
        {f"a{desk.id}-role": "admin", f"a{desk.id}-password": "short"},
        follow_redirects=True,
    )
    assert "between 12 and 200 characters" in short.get_data(as_text=True)


def test_the_appointment_page_shows_screening_history_and_texts(
    app: Flask, staff_client: FlaskClient
) -> None:
    appt = make_appointment(make_slot(days_ahead=3), conservative_treatment="no")
    html = staff_client.get(f"/staff/appointments/{appt.id}").get_data(as_text=True)
    assert "8 weeks of conservative treatment?</dt><dd>No" in html
    assert "new → booked" in html
    assert "confirmation · pending" in html


def test_two_schedulers_marking_at_once_one_wins(app: Flask) -> None:
    appt = appointment_today()
    first, second = make_staff("a@clinic.test"), make_staff("b@clinic.test")
    results: list[str] = []
    barrier = threading.Barrier(2)

    def mark(user_id: int, status: str) -> None:
        with app.app_context():
            user = db.session.get(StaffUser, user_id)
            target = db.session.get(Appointment, appt.id)
            barrier.wait()
            try:
                with unit_of_work():
                    mark_appointment(target, status, 1, user, utcnow())
                results.append(status)
            except BookingError as error:
                results.append(type(error).__name__)
            finally:
                db.session.remove()

    threads = [
        threading.Thread(target=mark, args=(first.id, "arrived")),
        threading.Thread(target=mark, args=(second.id, "no_show")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=len) in (
        ["arrived", "StaleAppointment"],
        ["no_show", "StaleAppointment"],
    )
    final = fresh(appt)
    assert final.status in ("arrived", "no_show") and final.version == 2
    assert (
        db.session.scalar(
            select(func.count(AppointmentEvent.id)).where(
                AppointmentEvent.appointment_id == appt.id
            )
        )
        == 2
    )


def race_for(app: Flask, slot_id: int, sources: tuple[str, ...]) -> list[str]:
    outcomes: list[str] = []
    barrier = threading.Barrier(len(sources))

    def book_as(source: str) -> None:
        with app.app_context():
            barrier.wait()
            try:
                actor = Actor(ActorKind.STAFF) if source == "staff" else PATIENT_WEB
                book(booking_request(slot_id, source=source), actor=actor)
                outcomes.append(source)
            except BookingError as error:
                outcomes.append(error.code)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=book_as, args=(source,)) for source in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_a_scheduler_and_an_online_patient_racing_for_the_last_place(app: Flask) -> None:
    for _ in range(5):
        slot = make_slot(days_ahead=4, capacity=1)
        outcomes = race_for(app, slot.id, ("staff", "online_form"))
        assert outcomes.count("slot_full") == 1, outcomes
        db.session.remove()
        assert db.session.get(Slot, slot.id).booked_count == 1
