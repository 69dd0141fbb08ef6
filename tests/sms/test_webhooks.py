"""Twilio's webhooks: signed incoming texts (STOP, HELP, C, R, ...) and delivery reports."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from scheduler.extensions import db
from scheduler.models import (
    AppointmentEvent,
    InboundMessage,
    MessageStatus,
    OutboundMessage,
    PhoneNumberState,
)
from scheduler.sms.dispatch import Dispatcher
from scheduler.sms.replies import action_of
from tests.factories import add_message_schedules, make_appointment, make_slot, texts_of
from tests.sms.conftest import twilio_settings
from tests.twilio_server import FakeTwilio

PHONE = "+18302574811"
BASE = "https://book.example.test"  # PUBLIC_BASE_URL in tests; requests arrive at localhost
_sids = iter(range(1, 1_000_000))


@pytest.fixture
def app_config(twilio: FakeTwilio) -> dict[str, Any]:
    return twilio_settings(twilio)


def signed_post(
    client: FlaskClient, app: Flask, path: str, form: dict[str, str], token: str | None = None
) -> Any:
    signature = RequestValidator(token or app.config["TWILIO_AUTH_TOKEN"]).compute_signature(
        BASE + path, form
    )
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def text_in(
    client: FlaskClient, app: Flask, body: str, sid: str | None = None, sender: str = PHONE
) -> Any:
    form = {
        "MessageSid": sid or f"SM{next(_sids):032x}",
        "AccountSid": app.config["TWILIO_ACCOUNT_SID"],
        "From": sender,
        "To": "+12105550100",
        "Body": body,
        "NumSegments": "1",
    }
    return signed_post(client, app, "/sms/inbound", form)


def reply_of(response: Any) -> str:
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    return response.get_data(as_text=True)


def test_unsigned_or_badly_signed_webhooks_are_refused(client: FlaskClient, app: Flask) -> None:
    form = {"MessageSid": "SM1", "From": PHONE, "To": "+12105550100", "Body": "STOP"}
    assert client.post("/sms/inbound", data=form).status_code == 403
    bad = signed_post(client, app, "/sms/inbound", form, token="not-the-token")
    assert bad.status_code == 403
    tampered = RequestValidator(app.config["TWILIO_AUTH_TOKEN"]).compute_signature(
        BASE + "/sms/inbound", {**form, "Body": "HELLO"}
    )
    assert (
        client.post("/sms/inbound", data=form, headers={"X-Twilio-Signature": tampered}).status_code
        == 403
    )
    # Signed for the address the request reached, not the public one Twilio was given.
    local = RequestValidator(app.config["TWILIO_AUTH_TOKEN"]).compute_signature(
        "http://localhost/sms/inbound", form
    )
    assert (
        client.post("/sms/inbound", data=form, headers={"X-Twilio-Signature": local}).status_code
        == 403
    )
    assert client.post("/sms/status", data={"MessageSid": "x"}).status_code == 403
    assert db.session.scalar(select(func.count(InboundMessage.id))) == 0
    assert db.session.scalar(select(func.count(PhoneNumberState.id))) == 0


def test_webhooks_are_refused_when_no_auth_token_is_set(client: FlaskClient, app: Flask) -> None:
    token = app.config["TWILIO_AUTH_TOKEN"]
    app.config["TWILIO_AUTH_TOKEN"] = None
    form = {"MessageSid": "SM1", "From": PHONE, "Body": "STOP"}
    response = signed_post(client, app, "/sms/inbound", form, token=token)
    assert response.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "stop",
        " Stop. ",
        "STOPALL",
        "unsubscribe!",
        "Cancel",
        "end",
        "QUIT",
        "revoke",
        "opt-out",
        "OPTOUT",
    ],
)
def test_opt_out_words(body: str) -> None:
    assert action_of(body) == "opt_out"


@pytest.mark.parametrize(
    ("body", "action"),
    [
        ("START", "opt_in"),
        ("yes", "opt_in"),
        ("Unstop", "opt_in"),
        ("help", "help"),
        ("INFO?", "help"),
        ("c", "confirm"),
        (" C ", "confirm"),
        ("Confirm!", "confirm"),
        ("r", "reschedule"),
        ("Can I come earlier?", "other"),
        ("", "other"),
        ("stop it", "other"),
    ],
)
def test_other_words(body: str, action: str) -> None:
    assert action_of(body) == action


def test_stop_cancels_every_pending_text_at_once_and_start_opts_back_in(
    client: FlaskClient, app: Flask, twilio: FakeTwilio
) -> None:
    add_message_schedules()
    app.config["MAX_ACTIVE_BOOKINGS_PER_PHONE"] = 4
    first = make_appointment(make_slot(days_ahead=8), phone=PHONE)
    second = make_appointment(make_slot(days_ahead=9), phone=PHONE)
    response = text_in(client, app, " stop. ")
    assert "<Message>" not in reply_of(response)  # Twilio's opt-out handling answers STOP
    for appt in (first, second):
        texts = texts_of(appt)
        assert {t.status for t in texts.values()} == {MessageStatus.CANCELLED}
        assert {t.status_reason for t in texts.values()} == {"opted_out"}
    third = make_appointment(make_slot(days_ahead=10), phone=PHONE)
    with Dispatcher(app) as dispatcher:
        dispatcher.dispatch_due()
    assert twilio.requests == []
    assert {t.status_reason for t in texts_of(third).values()} == {"opted_out"}

    text_in(client, app, "START")
    # What STOP cancelled stays cancelled (the issue: opt-out cancels pending texts);
    # texts queued after START go out.
    assert {t.status for t in texts_of(first).values()} == {MessageStatus.CANCELLED}
    state = db.session.scalar(select(PhoneNumberState).where(PhoneNumberState.phone == PHONE))
    db.session.refresh(state)
    assert not state.is_opted_out and state.opted_in_at is not None
    fourth = make_appointment(make_slot(days_ahead=11), phone=PHONE)
    with Dispatcher(app) as dispatcher:
        assert dispatcher.dispatch_due().sent >= 1
    assert texts_of(fourth)["confirmation"].status == MessageStatus.SENT


def test_opt_out_words_are_answered_when_configured(client: FlaskClient, app: Flask) -> None:
    app.config["SMS_ANSWER_OPT_OUT_WORDS"] = True
    assert "unsubscribed" in reply_of(text_in(client, app, "STOP"))
    assert "appointment texts again" in reply_of(text_in(client, app, "START"))


def test_help_answers_with_the_clinic_name_and_phone(client: FlaskClient, app: Flask) -> None:
    reply = reply_of(text_in(client, app, "help"))
    assert "Freedom Spine &amp; Pain Center" in reply
    assert "(210) 920-8945" in reply
    assert "STOP" in reply


def test_c_confirms_the_senders_next_appointment(client: FlaskClient, app: Flask) -> None:
    later = make_appointment(make_slot(days_ahead=12), phone=PHONE)
    sooner = make_appointment(make_slot(days_ahead=4), phone=PHONE)
    other_number = make_appointment(make_slot(days_ahead=2), phone="+18302570000")
    reply = reply_of(text_in(client, app, "C"))
    assert "Thank you, Maria" in reply and "is confirmed" in reply
    for appt in (later, sooner, other_number):
        db.session.refresh(appt)
    assert (sooner.status, later.status, other_number.status) == (
        "confirmed",
        "booked",
        "booked",
    )
    event = db.session.scalar(
        select(AppointmentEvent)
        .where(AppointmentEvent.appointment_id == sooner.id)
        .order_by(AppointmentEvent.id.desc())
    )
    assert (event.from_status, event.to_status, event.actor) == (
        "booked",
        "confirmed",
        "patient_text",
    )
    inbound = db.session.scalar(select(InboundMessage))
    assert (inbound.action, inbound.appointment_id) == ("confirm", sooner.id)


def test_a_retried_webhook_is_handled_once(client: FlaskClient, app: Flask) -> None:
    appt = make_appointment(make_slot(days_ahead=4), phone=PHONE)
    first = reply_of(text_in(client, app, "C", sid="SM" + "a" * 32))
    again = reply_of(text_in(client, app, "C", sid="SM" + "a" * 32))
    assert first == again
    assert db.session.scalar(select(func.count(InboundMessage.id))) == 1
    events = db.session.scalar(
        select(func.count(AppointmentEvent.id)).where(
            AppointmentEvent.appointment_id == appt.id, AppointmentEvent.actor == "patient_text"
        )
    )
    assert events == 1


def test_replies_never_reveal_a_booking_whose_patient_did_not_agree_to_texts(
    client: FlaskClient, app: Flask
) -> None:
    appt = make_appointment(make_slot(days_ahead=4), phone=PHONE, sms_consent=False)
    for body in ("R", "C"):
        reply = reply_of(text_in(client, app, body))
        assert "no upcoming visit" in reply
        assert appt.reference not in reply and "/manage/" not in reply
    db.session.refresh(appt)
    assert appt.status == "booked"


def test_a_webhook_retried_concurrently_is_handled_once(app: Flask, live_server: str) -> None:
    appt = make_appointment(make_slot(days_ahead=4), phone=PHONE)
    form = {
        "MessageSid": "SM" + "c" * 32,
        "From": PHONE,
        "To": "+12105550100",
        "Body": "C",
    }
    app.config["PUBLIC_BASE_URL"] = live_server
    signature = RequestValidator(app.config["TWILIO_AUTH_TOKEN"]).compute_signature(
        live_server + "/sms/inbound", form
    )
    barrier = threading.Barrier(6)
    answers: list[tuple[int, str]] = []

    def post() -> None:
        barrier.wait()
        response = requests.post(
            live_server + "/sms/inbound",
            data=form,
            headers={"X-Twilio-Signature": signature},
            timeout=30,
        )
        answers.append((response.status_code, response.text))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {status for status, _ in answers} == {200}
    assert len({text for _, text in answers}) == 1  # the same reply every time
    db.session.remove()
    assert db.session.scalar(select(func.count(InboundMessage.id))) == 1
    events = db.session.scalar(
        select(func.count(AppointmentEvent.id)).where(
            AppointmentEvent.appointment_id == appt.id, AppointmentEvent.actor == "patient_text"
        )
    )
    assert events == 1


def test_r_answers_with_the_manage_link(client: FlaskClient, app: Flask) -> None:
    appt = make_appointment(make_slot(days_ahead=4), phone=PHONE)
    reply = reply_of(text_in(client, app, "R"))
    assert f"{BASE}/manage/{appt.reference}/" in reply
    token = reply.split(f"/manage/{appt.reference}/")[1].split()[0]
    assert client.get(f"/manage/{appt.reference}/{token}").status_code == 200


def test_replies_without_an_appointment_and_unknown_texts_get_help(
    client: FlaskClient, app: Flask
) -> None:
    assert "no upcoming visit" in reply_of(text_in(client, app, "C"))
    reply = reply_of(text_in(client, app, "What time is it?"))
    assert "Reply C to confirm, R to reschedule" in reply
    stored = db.session.scalars(select(InboundMessage.body).order_by(InboundMessage.id)).all()
    assert stored == ["C", "What time is it?"]


def test_spanish_speakers_get_spanish_replies(client: FlaskClient, app: Flask) -> None:
    make_appointment(make_slot(days_ahead=4), phone=PHONE, language="es")
    assert "queda confirmada" in reply_of(text_in(client, app, "c"))


def test_an_opted_out_number_gets_no_reply_but_its_confirmation_counts(
    client: FlaskClient, app: Flask
) -> None:
    appt = make_appointment(make_slot(days_ahead=4), phone=PHONE)
    text_in(client, app, "STOP")
    assert "<Message>" not in reply_of(text_in(client, app, "C"))
    db.session.refresh(appt)
    assert appt.status == "confirmed"


def test_status_callbacks_move_forward_only(
    client: FlaskClient, app: Flask, twilio: FakeTwilio
) -> None:
    appt = make_appointment(make_slot(days_ahead=4), phone=PHONE)
    with Dispatcher(app) as dispatcher:
        dispatcher.dispatch_due()
    text = texts_of(appt)["confirmation"]

    def report(status: str, **extra: str) -> int:
        form = {"MessageSid": text.provider_sid, "MessageStatus": status, **extra}
        return signed_post(client, app, "/sms/status", form).status_code

    assert report("sent") == 204
    assert texts_of(appt)["confirmation"].status == MessageStatus.SENT
    assert report("delivered") == 204
    assert report("sent") == 204  # late and out of order
    assert report("undelivered", ErrorCode="30003") == 204  # a duplicate terminal report
    text = texts_of(appt)["confirmation"]
    assert text.status == MessageStatus.DELIVERED
    assert text.delivered_at is not None


def test_undelivered_to_a_landline_marks_the_number_unreachable(
    client: FlaskClient, app: Flask, twilio: FakeTwilio
) -> None:
    appt = make_appointment(make_slot(days_ahead=4), phone=PHONE)
    with Dispatcher(app) as dispatcher:
        dispatcher.dispatch_due()
    sid = texts_of(appt)["confirmation"].provider_sid
    form = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30006"}
    assert signed_post(client, app, "/sms/status", form).status_code == 204
    text = texts_of(appt)["confirmation"]
    assert (text.status, text.error_code) == (MessageStatus.UNDELIVERED, 30006)
    state = db.session.scalar(select(PhoneNumberState).where(PhoneNumberState.phone == PHONE))
    assert state.unreachable_code == 30006


def test_status_for_an_unknown_text_changes_nothing(client: FlaskClient, app: Flask) -> None:
    form = {"MessageSid": "SM" + "f" * 32, "MessageStatus": "delivered"}
    assert signed_post(client, app, "/sms/status", form).status_code == 204
    bad = {"MessageSid": "", "MessageStatus": "delivered"}
    assert signed_post(client, app, "/sms/status", bad).status_code == 400
    assert db.session.scalar(select(func.count(OutboundMessage.id))) == 0


def test_signature_holds_for_the_public_address_with_a_query_string(
    client: FlaskClient, app: Flask
) -> None:
    form = {"MessageSid": "SM" + "b" * 32, "From": PHONE, "To": "+12105550100", "Body": "HELP"}
    signature = RequestValidator(app.config["TWILIO_AUTH_TOKEN"]).compute_signature(
        BASE + "/sms/inbound?source=twilio", form
    )
    response = client.post(
        "/sms/inbound?source=twilio", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 200
