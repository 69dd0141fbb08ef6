"""The confirmation and manage pages say which texts will come and when, from the outbox."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select

from scheduler.appointments.links import manage_token
from scheduler.extensions import db
from scheduler.models import Appointment, MessageStatus
from scheduler.sms.outbox import opt_out
from tests.booking.conftest import MONDAY_AFTERNOON, MONDAY_NIGHT, post_booking
from tests.factories import CHICAGO, add_message_schedules, local_instant, make_slot, texts_of
from tests.test_translations import visible_text

pytestmark = pytest.mark.usefixtures("fresh_requests")


def book_at(client: FlaskClient, moment: datetime, visit: datetime, **form: str) -> str:
    """Book through the form at ``moment``; the confirmation page's visible text."""
    add_message_schedules()
    with time_machine.travel(moment, tick=False):
        slot = make_slot(starts_at=visit)
        response = post_booking(client, slot, **form)
        assert response.status_code == 303
        return visible_text(client.get(response.headers["Location"]).get_data(as_text=True))


def in_days(moment: datetime, days: int, at: time) -> datetime:
    return local_instant((moment + timedelta(days=days)).date(), at)


def test_booked_in_sending_hours_the_confirmation_is_on_its_way(client: FlaskClient) -> None:
    page = book_at(client, MONDAY_AFTERNOON, in_days(MONDAY_AFTERNOON, 5, time(10)), language="en")
    assert "Your confirmation text is on its way." in page
    # Saturday 10:00: instructions 72 hours before, the reminder 24 hours before.
    assert (
        "Your text with the visit instructions will arrive after 10:00 AM on Wednesday, April 15."
        in page
    )
    assert "Your reminder text will arrive after 10:00 AM on Friday, April 17." in page
    assert "between 8:00 AM and 9:00 PM Central time" in page
    assert "Questions? Call (210) 920-8945" in page


def test_booked_at_night_the_confirmation_waits_for_eight(client: FlaskClient) -> None:
    page = book_at(client, MONDAY_NIGHT, in_days(MONDAY_NIGHT, 2, time(15)), language="en")
    assert "Your confirmation text will arrive after 8:00 AM on Tuesday, April 14." in page
    # Booked within 72 hours: the instructions follow the confirmation, also at 8:00.
    assert "Your text with the visit instructions will arrive after 8:00 AM on Tuesday" in page
    assert "Your reminder text will arrive after 3:00 PM on Tuesday, April 14." in page
    appt = db.session.scalar(select(Appointment))
    due = texts_of(appt)["confirmation"].due_at.astimezone(CHICAGO)
    assert (due.date().isoformat(), due.hour, due.minute) == ("2026-04-14", 8, 0)


def test_booked_before_eight_the_confirmation_comes_today(client: FlaskClient) -> None:
    early = datetime(2026, 4, 13, 6, 30, tzinfo=CHICAGO)
    page = book_at(client, early, in_days(early, 3, time(9)), language="en")
    assert "Your confirmation text will arrive today after 8:00 AM." in page


def test_the_notice_in_spanish(client: FlaskClient) -> None:
    client.get("/?lang=es")
    page = book_at(client, MONDAY_NIGHT, in_days(MONDAY_NIGHT, 2, time(13)))
    assert (
        "Su mensaje de confirmación llegará después de las 8:00 a.m. del martes 14 de abril."
        in page
    )
    # 1 p.m.: "la 1:00", not "las 1:00".
    assert (
        "Su mensaje de recordatorio llegará después de la 1:00 p.m. del martes 14 de abril." in page
    )
    assert "¿Preguntas? Llame al (210) 920-8945" in page


def test_without_consent_no_texts_and_the_phone(client: FlaskClient) -> None:
    page = book_at(
        client,
        MONDAY_AFTERNOON,
        in_days(MONDAY_AFTERNOON, 5, time(10)),
        sms_consent=None,
        language="en",
    )
    assert "You will not get text messages about this appointment" in page
    assert "on its way" not in page and "will arrive" not in page
    assert "Questions? Call (210) 920-8945" in page


def test_sent_and_stopped_texts(client: FlaskClient, app: Any) -> None:
    book_at(client, MONDAY_AFTERNOON, in_days(MONDAY_AFTERNOON, 5, time(10)), language="en")
    appt = db.session.scalar(select(Appointment))
    confirmation = texts_of(appt)["confirmation"]
    confirmation.status = MessageStatus.DELIVERED
    confirmation.sent_at = MONDAY_AFTERNOON
    db.session.commit()
    with time_machine.travel(MONDAY_AFTERNOON + timedelta(minutes=5), tick=False):
        path = f"/manage/{appt.reference}/{manage_token(appt)}"
        page = visible_text(client.get(path).get_data(as_text=True))
        assert "Your confirmation text was sent." in page
        opt_out(appt.patient.phone, MONDAY_AFTERNOON)
        db.session.commit()
        stopped = visible_text(client.get(path).get_data(as_text=True))
    assert "Texts to your number are turned off, because it replied STOP." in stopped
