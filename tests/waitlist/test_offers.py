"""Freed places go to the waitlist: in join order, a batch at a time, within sending hours,
never to an opted-out number or without consent; the first accept wins; offers run out."""

from __future__ import annotations

import io
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from scheduler.appointments.lifecycle import PATIENT_WEB
from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.models import (
    Appointment,
    MessageStatus,
    OfferOutcome,
    Slot,
    WaitlistEntry,
    WaitlistStatus,
    utcnow,
)
from scheduler.sms.backends import ConsoleBackend
from scheduler.sms.dispatch import Dispatcher
from scheduler.sms.outbox import opt_out
from scheduler.waitlist.entries import take_off_the_list
from scheduler.waitlist.offers import accept_offer, run_offers
from tests.conftest import Clock
from tests.factories import (
    CHICAGO,
    cancel,
    days_from_today,
    make_appointment,
    make_location,
    make_slot,
)
from tests.waitlist.conftest import join, offer_texts, offers_of

pytestmark = pytest.mark.clock_sensitive  # sending hours, the minimum notice, expiry


def full_slot(location: Any = None, days_ahead: int = 3, capacity: int = 1) -> tuple[Slot, list]:
    slot = make_slot(location or make_location(), days_ahead=days_ahead, capacity=capacity)
    booked = [make_appointment(slot) for _ in range(capacity)]
    return slot, booked


def test_a_cancelled_place_is_offered_to_the_first_three_in_join_order(
    app: Flask, clock: Clock
) -> None:
    slot, (appt,) = full_slot()
    location = slot.location
    entries = [join(location) for _ in range(5)]
    clock.shift(timedelta(seconds=1))
    cancel(appt)
    offers = offers_of(slot.id)
    assert [o.entry_id for o in offers] == [e.id for e in entries[:3]]
    texts = offer_texts()
    assert len(texts) == 3 and all(t.status == MessageStatus.PENDING for t in texts)
    assert all(t.kind == "waitlist_offer" and "/offer/" in t.body for t in texts)
    assert {t.to_phone for t in texts} == {e.patient.phone for e in entries[:3]}
    db.session.expire_all()
    statuses = [db.session.get(WaitlistEntry, e.id).status for e in entries]
    assert statuses == ["offered"] * 3 + ["waiting"] * 2


def test_only_patients_whose_window_includes_the_place_get_it(app: Flask, clock: Clock) -> None:
    slot, (appt,) = full_slot(days_ahead=6)
    location = slot.location
    day = slot.starts_at.astimezone(CHICAGO)
    too_late = join(location, earliest=days_from_today(10), latest=days_from_today(20))
    other_day = join(location, weekdays=((day.weekday() + 1) % 7,))
    afternoons = join(location, part_of_day="afternoon")  # the slot is at 10:00
    fits = join(location, weekdays=(day.weekday(),), part_of_day="morning")
    cancel(appt)
    assert [o.entry_id for o in offers_of(slot.id)] == [fits.id]
    assert {too_late.id, other_day.id, afternoons.id}.isdisjoint(
        o.entry_id for o in offers_of(slot.id)
    )


def test_no_offer_to_an_opted_out_number_or_without_consent(app: Flask, clock: Clock) -> None:
    slot, (appt,) = full_slot()
    location = slot.location
    opted = join(location)
    with unit_of_work():
        opt_out(opted.patient.phone, utcnow())
    no_consent = join(location, sms_consent=False, email="ana@example.com")
    fine = join(location)
    cancel(appt)
    # Without text consent, the offer goes by email only (tests/waitlist/test_offer_emails.py).
    assert [o.entry_id for o in offers_of(slot.id)] == [no_consent.id, fine.id]
    texts = [t for t in offer_texts() if t.channel == "sms"]
    assert [t.to_phone for t in texts] == [fine.patient.phone]
    assert opted.patient.phone not in {t.to_phone for t in offer_texts()}
    assert no_consent.patient.phone not in {t.to_phone for t in offer_texts()}
    emails = [t for t in offer_texts() if t.channel == "email"]
    assert [t.to_email for t in emails] == ["ana@example.com"]


def test_no_offer_to_a_number_at_its_daily_text_cap(app: Flask, clock: Clock) -> None:
    app.config["SMS_MAX_PER_NUMBER_PER_DAY"] = 0
    slot, (appt,) = full_slot()
    join(slot.location)
    cancel(appt)
    assert offers_of(slot.id) == []


def test_offers_run_out_and_the_next_batch_goes_out(app: Flask, clock: Clock) -> None:
    slot, (appt,) = full_slot()
    entries = [join(slot.location) for _ in range(5)]
    cancel(appt)
    first = offers_of(slot.id)
    assert len(first) == 3
    assert run_offers(utcnow()).expired == 0  # not yet
    clock.shift(timedelta(minutes=app.config["WAITLIST_OFFER_MINUTES"], seconds=1))
    result = run_offers(utcnow())
    assert (result.expired, result.sent) == (3, 2)
    offers = offers_of(slot.id)
    assert [o.outcome for o in offers[:3]] == [OfferOutcome.EXPIRED] * 3
    assert [o.entry_id for o in offers[3:]] == [e.id for e in entries[3:]]
    # Their texts, if still pending, never go out; the first three wait again.
    db.session.expire_all()
    assert [db.session.get(WaitlistEntry, e.id).status for e in entries[:3]] == ["waiting"] * 3
    # An expired offer cannot be taken.
    assert accept_offer(first[0].id, PATIENT_WEB, utcnow()).outcome == "expired"


def test_an_accepted_offer_books_the_place_and_later_accepts_are_told_it_was_taken(
    app: Flask, clock: Clock
) -> None:
    slot, (appt,) = full_slot()
    entries = [join(slot.location) for _ in range(3)]
    cancel(appt)
    offers = offers_of(slot.id)
    won = accept_offer(offers[1].id, PATIENT_WEB, utcnow())
    assert won.outcome == "accepted" and won.appointment is not None
    assert won.appointment.slot_id == slot.id
    assert won.appointment.patient_id == entries[1].patient_id
    lost = accept_offer(offers[0].id, PATIENT_WEB, utcnow())
    assert lost.outcome == "taken"
    db.session.expire_all()
    assert db.session.get(Slot, slot.id).booked_count == 1
    assert db.session.get(WaitlistEntry, entries[1].id).status == WaitlistStatus.BOOKED
    assert db.session.get(WaitlistEntry, entries[0].id).status == WaitlistStatus.WAITING
    outcomes = [o.outcome for o in offers_of(slot.id)]
    assert outcomes == [OfferOutcome.TAKEN, OfferOutcome.ACCEPTED, OfferOutcome.TAKEN]
    # The losers' texts not sent yet are withdrawn.
    pending = [t for t in offer_texts() if t.status == MessageStatus.PENDING]
    assert pending == []


@pytest.mark.parametrize("racers", [10])
def test_ten_patients_racing_for_one_place_make_exactly_one_booking(
    app: Flask, clock: Clock, racers: int
) -> None:
    """Each accept runs in its own thread, session and (PostgreSQL) connection."""
    app.config["WAITLIST_BATCH"] = racers
    slot, (appt,) = full_slot()
    for _ in range(racers):
        join(slot.location)
    cancel(appt)
    offer_ids = [o.id for o in offers_of(slot.id)]
    assert len(offer_ids) == racers
    barrier = threading.Barrier(racers)
    outcomes: list[str] = []
    errors: list[BaseException] = []
    now = utcnow()

    def take(offer_id: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                outcomes.append(accept_offer(offer_id, PATIENT_WEB, now).outcome)
            except BaseException as error:
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=take, args=(i,)) for i in offer_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert Counter(outcomes) == {"accepted": 1, "taken": racers - 1}
    db.session.expire_all()
    assert db.session.get(Slot, slot.id).booked_count == 1
    holding = db.session.scalar(
        select(func.count(Appointment.id)).where(
            Appointment.slot_id == slot.id, Appointment.status == "booked"
        )
    )
    assert holding == 1


def test_a_booked_patient_moves_earlier_and_their_old_place_goes_to_the_next(
    app: Flask, clock: Clock
) -> None:
    """The cascade: A holds day 12 and waits for earlier; B waits for anything up to day 20.
    Day 3 frees: A takes it (moved, never two places or none); day 12 then goes to B."""
    location = make_location()
    early, (early_appt,) = full_slot(location, days_ahead=3)
    late = make_slot(location, days_ahead=12, capacity=1)
    a_appt = make_appointment(late)
    a = join(
        location,
        first_name=a_appt.patient.first_name,
        last_name=a_appt.patient.last_name,
        phone=a_appt.patient.phone,
        date_of_birth=a_appt.patient.date_of_birth,
        latest=days_from_today(11),
        appointment_id=a_appt.id,
    )
    b = join(location, latest=days_from_today(20))
    cancel(early_appt)
    offers = offers_of(early.id)
    assert [o.entry_id for o in offers] == [a.id, b.id]
    result = accept_offer(offers[0].id, PATIENT_WEB, utcnow())
    assert result.outcome == "accepted" and result.appointment is not None
    db.session.expire_all()
    moved = db.session.get(Appointment, a_appt.id)
    assert moved.status == "rescheduled"
    assert result.appointment.slot_id == early.id
    assert result.appointment.rescheduled_from_id == a_appt.id
    held = db.session.scalars(
        select(Appointment).where(
            Appointment.patient_id == a_appt.patient_id, Appointment.status == "booked"
        )
    ).all()
    assert [h.slot_id for h in held] == [early.id]
    assert db.session.get(Slot, late.id).booked_count == 0
    assert db.session.get(Slot, early.id).booked_count == 1
    # B's offer of day 3 is closed as taken, and B is offered A's old place.
    assert [o.outcome for o in offers_of(early.id)] == ["accepted", "taken"]
    assert [o.entry_id for o in offers_of(late.id)] == [b.id]
    taken = accept_offer(offers_of(late.id)[0].id, PATIENT_WEB, utcnow())
    assert taken.outcome == "accepted"
    days = db.session.get(type(offers[0]), offers[0].id).days_sooner
    assert days == pytest.approx(9, abs=0.05)


def test_a_booked_patient_is_not_offered_a_later_time(app: Flask, clock: Clock) -> None:
    location = make_location()
    a_appt = make_appointment(make_slot(location, days_ahead=3, capacity=1))
    join(
        location,
        first_name=a_appt.patient.first_name,
        last_name=a_appt.patient.last_name,
        phone=a_appt.patient.phone,
        date_of_birth=a_appt.patient.date_of_birth,
        appointment_id=a_appt.id,
    )
    later, (other,) = full_slot(location, days_ahead=5)
    cancel(other)
    assert offers_of(later.id) == []


@pytest.mark.clock(datetime(2027, 4, 13, 22, 30, tzinfo=CHICAGO))
def test_a_place_freed_at_night_is_offered_at_eight_in_the_morning(
    app: Flask, clock: Clock
) -> None:
    slot, (appt,) = full_slot(days_ahead=2)
    join(slot.location)
    cancel(appt)
    (offer,) = offers_of(slot.id)
    morning = datetime(2027, 4, 14, 8, 0, tzinfo=CHICAGO)
    assert offer.sent_at == morning
    assert offer.expires_at == morning + timedelta(minutes=30)
    (text,) = offer_texts()
    assert text.due_at == morning


@pytest.mark.clock(datetime(2027, 4, 13, 22, 30, tzinfo=CHICAGO))
def test_no_offer_held_overnight_for_a_place_within_the_notice_by_morning(
    app: Flask, clock: Clock
) -> None:
    # 9:00 tomorrow is within the two-hour notice by 8:00, when texts may go out.
    start = datetime(2027, 4, 14, 9, 0, tzinfo=CHICAGO).astimezone(UTC)
    slot = make_slot(starts_at=start, capacity=1)
    appt = make_appointment(slot)
    join(slot.location)
    cancel(appt)
    assert offers_of(slot.id) == []


@pytest.mark.parametrize(
    "evening",
    [
        datetime(2027, 3, 13, 21, 30, tzinfo=CHICAGO),  # the night clocks go forward
        datetime(2027, 11, 6, 21, 30, tzinfo=CHICAGO),  # the night clocks go back
    ],
    ids=["spring-forward", "fall-back"],
)
def test_offers_freed_across_the_dst_nights_wait_for_eight_local(
    app: Flask, clock: Clock, evening: datetime
) -> None:
    """Through the night, every half hour a place frees; none is offered before 8:00 local."""
    clock.move_to(evening, tick=False)
    location = make_location()
    for _ in range(3):
        join(location)
    morning = datetime.combine(
        evening.date() + timedelta(days=1), datetime.min.time().replace(hour=8), tzinfo=CHICAGO
    )
    instant = evening.astimezone(UTC)
    freed = 0
    while instant < morning.astimezone(UTC) - timedelta(minutes=30):
        clock.move_to(instant, tick=False)
        slot = make_slot(location, starts_at=instant + timedelta(days=2), capacity=1)
        appt = make_appointment(slot)
        cancel(appt)
        freed += 1
        instant = instant.astimezone(UTC) + timedelta(minutes=30)
    offers = [o for slot in db.session.scalars(select(Slot.id)) for o in offers_of(slot)]
    assert freed >= 18 and len(offers) == 3
    for offer in offers:
        local = offer.sent_at.astimezone(CHICAGO)
        assert (local.hour, local.minute) == (8, 0), local
        assert local.date() == morning.date()
    for text in offer_texts():
        assert text.due_at.astimezone(CHICAGO).hour == 8
    # The dispatcher, run every half hour through the night, sends nothing; at 8:00 it sends.
    out = io.StringIO()
    with Dispatcher(app, backend=ConsoleBackend(out)) as dispatcher:
        night = evening.astimezone(UTC)
        while night < morning.astimezone(UTC):
            assert dispatcher.dispatch_due(night).sent == 0, night.astimezone(CHICAGO)
            night += timedelta(minutes=30)
        assert dispatcher.dispatch_due(morning.astimezone(UTC)).sent >= 3  # with the bookings
    assert [t.status for t in offer_texts()] == ["sent"] * 3


def test_unblocking_a_slot_offers_its_place(app: Flask, clock: Clock) -> None:
    from scheduler.availability.changes import set_slot_blocked

    slot = make_slot(capacity=1, is_blocked=True, block_reason="meeting")
    entry = join(slot.location)
    with unit_of_work():
        set_slot_blocked(slot, False, "")
    assert [o.entry_id for o in offers_of(slot.id)] == [entry.id]


def test_offers_stop_once_the_place_is_within_the_minimum_notice(app: Flask, clock: Clock) -> None:
    """A place 2 h 20 min ahead (notice two hours): its offers end 20 minutes from now, not
    after their 30 minutes, and no next batch goes out for it."""
    start = utcnow().replace(second=0, microsecond=0) + timedelta(hours=2, minutes=20)
    slot = make_slot(starts_at=start, capacity=1)
    appt = make_appointment(slot)
    for _ in range(5):
        join(slot.location)
    cancel(appt)
    offers = offers_of(slot.id)
    assert len(offers) == 3
    notice = timedelta(minutes=app.config["MIN_NOTICE_MINUTES"])
    assert all(o.expires_at == start - notice for o in offers)
    assert all(t.send_before == start - notice for t in offer_texts())
    clock.shift(timedelta(minutes=21))
    result = run_offers(utcnow())
    assert (result.expired, result.sent) == (3, 0)
    assert len(offers_of(slot.id)) == 3


def test_a_declined_offer_goes_to_the_next_patient(app: Flask, clock: Clock) -> None:
    from scheduler.waitlist.offers import decline_offer

    app.config["WAITLIST_BATCH"] = 1
    slot, (appt,) = full_slot()
    first, second = join(slot.location), join(slot.location)
    cancel(appt)
    (offer,) = offers_of(slot.id)
    assert offer.entry_id == first.id
    assert decline_offer(offer.id, utcnow())
    offers = offers_of(slot.id)
    assert [(o.entry_id, o.outcome) for o in offers] == [
        (first.id, OfferOutcome.DECLINED),
        (second.id, None),
    ]
    db.session.expire_all()
    assert db.session.get(WaitlistEntry, first.id).status == WaitlistStatus.WAITING
    assert not decline_offer(offer.id, utcnow())  # once


def test_joining_without_text_consent_stops_the_texts_still_waiting(
    app: Flask, clock: Clock
) -> None:
    """As on a booking: the same person unticking the box withdraws their consent."""
    from tests.factories import texts_of

    appt = make_appointment(make_slot(days_ahead=10))
    assert texts_of(appt)["confirmation"].status == MessageStatus.PENDING
    patient = appt.patient
    entry = join(
        appt.slot.location,
        first_name=patient.first_name,
        last_name=patient.last_name,
        phone=patient.phone,
        date_of_birth=patient.date_of_birth,
        sms_consent=False,
        email="maria@example.com",
    )
    assert entry.patient_id == patient.id and not entry.by_text and entry.by_email
    confirmation = texts_of(appt)["confirmation"]
    assert (confirmation.status, confirmation.status_reason) == ("cancelled", "consent_withdrawn")


def test_an_extra_session_and_more_capacity_are_offered(app: Flask, clock: Clock) -> None:
    """Staff add an extra session on a closed day, or places to a full time: the list hears."""
    from datetime import time

    from scheduler.availability.changes import change_availability
    from scheduler.models import OpeningRule, ScheduleException

    location = make_location()
    first, second = join(location), join(location)
    day = days_from_today(5)
    with unit_of_work():
        change_availability(
            location,
            lambda: location.exceptions.append(
                ScheduleException(
                    day=day,
                    kind="extra",
                    start_time=time(9),
                    end_time=time(10),
                    slot_minutes=30,
                    capacity=1,
                )
            ),
            frozenset(),
            "exception.add",
        )
    extra = db.session.scalars(
        select(Slot).where(Slot.location_id == location.id).order_by(Slot.starts_at)
    ).all()
    assert len(extra) == 2
    offered = {o.entry_id for slot in extra for o in offers_of(slot.id)}
    assert offered == {first.id, second.id}  # each waiting patient, one offer at a time

    # A weekly session with one place; someone joins later; two places: the new one is offered.
    other = make_location()
    waiting = join(other)
    weekday = days_from_today(3).weekday()
    rule = OpeningRule(
        weekday=weekday, start_time=time(9), end_time=time(9, 30), slot_minutes=30, capacity=1
    )
    with unit_of_work():
        change_availability(other, lambda: other.opening_rules.append(rule), frozenset(), "rule")
    slots = db.session.scalars(select(Slot).where(Slot.location_id == other.id)).all()
    (first_offer,) = [o for s in slots for o in offers_of(s.id)]
    assert first_offer.entry_id == waiting.id
    with unit_of_work():
        take_off_the_list(first_offer.entry, WaitlistStatus.LEFT, PATIENT_WEB, utcnow())
    later = join(other)
    with unit_of_work():
        change_availability(other, lambda: setattr(rule, "capacity", 2), frozenset(), "rule")
    assert {o.entry_id for s in slots for o in offers_of(s.id)} >= {later.id}


def test_a_waiting_patient_who_moves_their_booking_is_moved_from_the_new_one(
    app: Flask, clock: Clock
) -> None:
    """A waits with a booking on day 12, then moves it to day 10 themselves. Day 3 frees and
    A takes it: the day-10 booking moves; A never holds two places."""
    from tests.factories import move

    location = make_location()
    a_appt = make_appointment(make_slot(location, days_ahead=12, capacity=1))
    patient = a_appt.patient
    entry = join(
        location,
        first_name=patient.first_name,
        last_name=patient.last_name,
        phone=patient.phone,
        date_of_birth=patient.date_of_birth,
        latest=days_from_today(9),
        appointment_id=a_appt.id,
    )
    day_ten = make_slot(location, days_ahead=10, capacity=1)
    moved = move(a_appt, day_ten.id)
    db.session.expire_all()
    assert db.session.get(WaitlistEntry, entry.id).appointment_id == moved.id
    early, (other,) = full_slot(location, days_ahead=3)
    cancel(other)
    (offer,) = offers_of(early.id)
    assert accept_offer(offer.id, PATIENT_WEB, utcnow()).outcome == "accepted"
    db.session.expire_all()
    held = db.session.scalars(
        select(Appointment).where(
            Appointment.patient_id == patient.id, Appointment.status == "booked"
        )
    ).all()
    assert [a.slot_id for a in held] == [early.id]


def test_a_patient_at_the_booking_cap_is_told_so_and_keeps_the_offer(
    app: Flask, clock: Clock
) -> None:
    location = make_location()
    phone = "+18302579901"
    for days in (8, 9):
        make_appointment(make_slot(location, days_ahead=days), phone=phone, last_name="Ortiz")
    slot, (appt,) = full_slot(location)
    entry = join(location, phone=phone, last_name="Ortiz")
    cancel(appt)
    (offer,) = offers_of(slot.id)
    assert offer.entry_id == entry.id
    result = accept_offer(offer.id, PATIENT_WEB, utcnow())
    assert result.outcome == "capped" and result.error is not None
    assert result.error.code == "too_many_bookings"
    db.session.expire_all()
    assert db.session.get(Slot, slot.id).booked_count == 0
    assert offers_of(slot.id)[0].outcome is None  # still theirs to take until it runs out
