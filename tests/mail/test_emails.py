"""Emails through the one outbox, sent by the dispatcher to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import icalendar
import phonenumbers
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from scheduler.content import save_content
from scheduler.database import unit_of_work
from scheduler.extensions import db
from scheduler.mail.backends import SmtpBackend
from scheduler.mail.outbox import queue_email, unsubscribe
from scheduler.models import (
    Appointment,
    MessageAttempt,
    MessageKind,
    MessageStatus,
    OutboundMessage,
)
from scheduler.sms.backends import FailureKind, SendFailure
from scheduler.sms.dispatch import Dispatcher
from tests.factories import (
    CHICAGO,
    add_message_schedules,
    book,
    booking_request,
    cancel,
    emails_of,
    make_slot,
    move,
    texts_of,
)
from tests.smtp_server import SmtpServer

pytestmark = pytest.mark.clock_sensitive  # sending hours, backoff

ADDRESS = "maria.garza@example.com"


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=CHICAGO).astimezone(UTC)


BOOKED = local(2026, 12, 1, 10, 0)  # a Tuesday morning
VISIT = local(2026, 12, 9, 10, 0)


def booked_visit(visit: datetime = VISIT, now: datetime = BOOKED, **overrides: Any) -> Appointment:
    values = {"email": ADDRESS, "sms_consent": False, **overrides}
    return book(booking_request(make_slot(starts_at=visit), **values), now=now)


def attempts_of(message: OutboundMessage) -> list[str]:
    return list(
        db.session.scalars(
            select(MessageAttempt.outcome)
            .where(MessageAttempt.message_id == message.id)
            .order_by(MessageAttempt.id)
        )
    )


def plain_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def whole(message: EmailMessage) -> str:
    """Every header and decoded part of a message, as one text to search."""
    parts = [f"{name}: {value}" for name, value in message.items()]
    for part in message.walk():
        if not part.is_multipart():
            content = part.get_content()
            parts.append(content.decode() if isinstance(content, bytes) else content)
    return "\n".join(parts)


def without_random_tokens(text: str) -> str:
    """The text without Message-IDs, MIME boundaries and signed tokens, whose random digits
    may spell a birth year."""
    text = re.sub(r"<[^<>\s]+@[^<>\s]+>", "<id>", text)
    text = re.sub(r"=+\d+=*", "<boundary>", text)
    return re.sub(r"[A-Za-z0-9_.-]{20,}", "<token>", text)


def test_the_cadence_by_email_without_sms_consent(dispatcher: Dispatcher, smtp: SmtpServer) -> None:
    """Confirmation with the .ics at once, the instructions 72 h and the reminder 24 h before;
    no texts at all without SMS consent; each email exactly once however often we dispatch."""
    add_message_schedules()
    appt = booked_visit()
    assert texts_of(appt) == {}
    assert set(emails_of(appt)) == {"confirmation", "instructions", "reminder"}

    report = dispatcher.dispatch_due(BOOKED)
    assert (report.claimed, report.sent, report.sent_by_channel) == (1, 1, {"email": 1})
    assert dispatcher.dispatch_due(BOOKED + timedelta(minutes=5)).claimed == 0
    [received] = smtp.received
    assert received.rcpt_tos == [ADDRESS]
    assert received.mail_from == "appointments@clinic.example.test"
    confirmation = received.message
    assert confirmation["To"] == ADDRESS
    assert "Your appointment at" in confirmation["Subject"]
    assert "Wednesday, December 9, 2026" in plain_of(confirmation)
    row = emails_of(appt)["confirmation"]
    assert (row.status, row.attempts, attempts_of(row)) == (MessageStatus.SENT, 1, ["sent"])
    assert row.provider_sid and row.provider_sid in confirmation["Message-ID"]

    # The calendar file, parsed back.
    [attachment] = list(confirmation.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_filename() == f"{appt.reference}.ics"
    calendar = icalendar.Calendar.from_ical(attachment.get_content())
    [event] = calendar.walk("VEVENT")
    assert str(event["uid"]) == f"{appt.reference}@book.example.test"
    assert event.decoded("dtstart") == VISIT
    assert event.decoded("dtend") == VISIT + timedelta(minutes=30)
    assert str(event["status"]) == "CONFIRMED"

    dispatcher.dispatch_due(VISIT - timedelta(hours=72))
    dispatcher.dispatch_due(VISIT - timedelta(hours=72))
    instructions = smtp.messages[-1]
    assert "How to prepare" in instructions["Subject"]
    slug = appt.slot.location.slug
    assert f"https://book.example.test/prepare/{slug}" in plain_of(instructions)
    assert "Bring a photo ID and your insurance card." in plain_of(instructions)
    assert "<li>Bring a photo ID and your insurance card.</li>" in html_of(instructions)
    assert not list(instructions.iter_attachments())

    dispatcher.dispatch_due(VISIT - timedelta(hours=24))
    assert "Reminder" in smtp.messages[-1]["Subject"]
    dispatcher.dispatch_due(VISIT - timedelta(hours=23))
    assert len(smtp.received) == 3
    assert smtp.duplicates() == {}
    assert {row.status for row in emails_of(appt).values()} == {MessageStatus.SENT}


def test_a_move_and_a_cancellation_by_email(dispatcher: Dispatcher, smtp: SmtpServer) -> None:
    add_message_schedules()
    appt = booked_visit()
    dispatcher.dispatch_due(BOOKED)
    later = make_slot(location=appt.slot.location, starts_at=VISIT + timedelta(days=2))
    moved = move(appt, later.id, now=BOOKED + timedelta(minutes=1))
    old = emails_of(appt)
    assert old["confirmation"].status == MessageStatus.SENT
    assert old["reminder"].status == MessageStatus.CANCELLED
    assert old["reminder"].status_reason == "appointment_rescheduled"
    assert set(emails_of(moved)) == {"rescheduled", "instructions", "reminder"}
    dispatcher.dispatch_due(BOOKED + timedelta(minutes=1))
    moved_email = smtp.messages[-1]
    assert "moved" in moved_email["Subject"]
    assert moved.reference in plain_of(moved_email)
    assert "Friday, December 11, 2026" in plain_of(moved_email)
    [ics] = list(moved_email.iter_attachments())
    [event] = icalendar.Calendar.from_ical(ics.get_content()).walk("VEVENT")
    assert event.decoded("dtstart") == VISIT + timedelta(days=2)

    cancel(moved, now=BOOKED + timedelta(minutes=2))
    new = emails_of(moved)
    assert new["reminder"].status == MessageStatus.CANCELLED
    assert new["cancellation"].status == MessageStatus.PENDING
    dispatcher.dispatch_due(BOOKED + timedelta(minutes=2))
    cancelled_email = smtp.messages[-1]
    assert "cancelled" in cancelled_email["Subject"]
    assert "To book another time: https://book.example.test/" in plain_of(cancelled_email)
    for hours in (72, 24):
        dispatcher.dispatch_due(VISIT + timedelta(days=2) - timedelta(hours=hours))
    assert len(smtp.received) == 3
    assert smtp.duplicates() == {}


def test_the_old_confirmation_of_a_moved_booking_is_cancelled(
    dispatcher: Dispatcher, smtp: SmtpServer
) -> None:
    appt = booked_visit()
    later = make_slot(location=appt.slot.location, starts_at=VISIT + timedelta(days=1))
    move(appt, later.id, now=BOOKED)
    assert emails_of(appt)["confirmation"].status == MessageStatus.CANCELLED


def test_spanish_and_the_minimum_necessary(dispatcher: Dispatcher, smtp: SmtpServer) -> None:
    """In the patient's language; a first name, the clinic, place, date, time, reference and
    links; never a last name, a birth date or a phone number; HTML escaped."""
    appt = booked_visit(language="es", first_name="María José", last_name="Garza-Ortíz")
    dispatcher.dispatch_due(BOOKED)
    [message] = smtp.messages
    assert " ".join(message["Subject"].split()) == (
        f"Su cita en {appt.slot.location.name} el miércoles, 9 de diciembre de 2026 "
        "a las 10:00 a.m."
    )
    assert message["Content-Language"] == "es"
    text = plain_of(message)
    assert "Hola, María José:" in text
    assert appt.reference in text
    assert "Recibe este correo porque se dio maria.garza@example.com" in text
    assert "Para no recibir más correos nuestros: https://book.example.test/email/" in text
    content = without_random_tokens(whole(message).replace(ADDRESS, ""))
    phone = appt.patient.phone  # +1 830 ...: every way it could be written
    national = phonenumbers.format_number(
        phonenumbers.parse(phone), phonenumbers.PhoneNumberFormat.NATIONAL
    )
    renderings = (phone, phone[2:], national, national.split(") ")[1])
    for private in ("Garza-Ortíz", "Garza", "1956", "04/02", *renderings):
        assert private not in content
    html = html_of(message)
    assert "Freedom Spine &amp; Pain Center" in html
    assert "<p>Hola, María José:</p>" in html
    [ics] = list(message.iter_attachments())
    [event] = icalendar.Calendar.from_ical(ics.get_content()).walk("VEVENT")
    assert str(event["summary"]).startswith("Consulta")


def test_text_and_html_escape_what_a_template_says(
    app: Flask, dispatcher: Dispatcher, smtp: SmtpServer
) -> None:
    """An admin's template is plain text: markup in it reaches the patient as text."""
    with unit_of_work():
        save_content(
            "email_confirmation",
            "en",
            None,
            "Booked <b>{first_name}</b>\n\nDear {first_name} & co, <script>x()</script>\n"
            "- one {reference}\n- two\n\nSee {manage_url}.",
            BOOKED,
        )
    appt = booked_visit(first_name="D'Arcy")
    dispatcher.dispatch_due(BOOKED)
    [message] = smtp.messages
    assert message["Subject"] == "Booked <b>D'Arcy</b>"
    html = html_of(message)
    assert "<script>" not in html and "&lt;script&gt;x()&lt;/script&gt;" in html
    assert "Dear D&#39;Arcy &amp; co" in html
    assert f"<ul><li>one {appt.reference}</li><li>two</li></ul>" in html
    link = re.search(r'<a href="([^"]+)">', html)
    assert link and link.group(1).startswith(f"https://book.example.test/manage/{appt.reference}/")
    assert "<script>x()</script>" in plain_of(message)  # plain text is plain


def test_no_email_without_an_address(dispatcher: Dispatcher, smtp: SmtpServer) -> None:
    add_message_schedules()
    appt = booked_visit(email=None)
    assert emails_of(appt) == {}
    assert queue_email(appt, MessageKind.REMINDER, BOOKED) is False
    dispatcher.dispatch_due(BOOKED)
    assert smtp.received == []


def test_sms_consent_withdrawn_leaves_the_emails(dispatcher: Dispatcher, smtp: SmtpServer) -> None:
    add_message_schedules()
    first = booked_visit(sms_consent=True)
    phone = first.patient.phone
    # The same person books again without ticking the box: their texts stop, emails stay.
    again = book(
        booking_request(
            make_slot(starts_at=VISIT + timedelta(days=3)),
            email=ADDRESS,
            sms_consent=False,
            phone=phone,
        ),
        now=BOOKED,
    )
    assert again.patient_id == first.patient_id
    assert {row.status for row in texts_of(first).values()} == {MessageStatus.CANCELLED}
    assert {row.status for row in emails_of(first).values()} == {MessageStatus.PENDING}


def test_one_click_unsubscribe_stops_every_email(
    client: FlaskClient, dispatcher: Dispatcher, smtp: SmtpServer
) -> None:
    add_message_schedules()
    appt = booked_visit()
    dispatcher.dispatch_due(BOOKED)
    [confirmation] = smtp.messages
    assert confirmation["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.fullmatch(r"<(https://[^>]+)>", confirmation["List-Unsubscribe"])
    assert link is not None
    path = link.group(1).removeprefix("https://book.example.test")
    assert path in plain_of(confirmation) or link.group(1) in plain_of(confirmation)

    # A GET only asks (mail scanners open links); the mail app's POST unsubscribes, no page.
    page = client.get(path)
    assert page.status_code == 200
    assert "Stop our emails to m" in page.get_data(as_text=True)
    assert emails_of(appt)["reminder"].status == MessageStatus.PENDING
    answer = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200 and answer.mimetype == "text/plain"
    rows = emails_of(appt)
    assert {rows["instructions"].status, rows["reminder"].status} == {MessageStatus.SUPPRESSED}
    assert rows["reminder"].status_reason == "unsubscribed"
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    for hours in (72, 24):
        dispatcher.dispatch_due(VISIT - timedelta(hours=hours))
    cancel(appt, now=VISIT - timedelta(hours=20))
    assert dispatcher.dispatch_due(VISIT - timedelta(hours=20)).claimed == 0
    assert len(smtp.received) == 1
    assert emails_of(appt)["cancellation"].status_reason == "unsubscribed"
    assert "already unsubscribed" in client.get(path).get_data(as_text=True)

    # A forged link opens nothing.
    forged = path.rsplit("/", 1)[0] + "/" + "0" * 32
    assert client.post(forged, data={"List-Unsubscribe": "One-Click"}).status_code == 404
    assert client.get(forged).status_code == 404


def test_a_booking_after_unsubscribing_gets_its_confirmation_only(
    dispatcher: Dispatcher, smtp: SmtpServer
) -> None:
    add_message_schedules()
    with unit_of_work():
        unsubscribe(ADDRESS.upper(), BOOKED - timedelta(days=1))
    appt = booked_visit()
    report = dispatcher.dispatch_due(BOOKED)
    assert (report.suppressed, report.sent) == (2, 1)
    rows = emails_of(appt)
    assert rows["confirmation"].status == MessageStatus.SENT
    assert rows["reminder"].status_reason == "unsubscribed"
    assert rows["instructions"].status == MessageStatus.SUPPRESSED
    for moment in (VISIT - timedelta(hours=72), VISIT - timedelta(hours=24)):
        dispatcher.dispatch_due(moment)
    [only] = smtp.messages
    assert "Your appointment at" in only["Subject"]


def test_the_unsubscribe_page_in_spanish(client: FlaskClient, dispatcher: Dispatcher) -> None:
    appt = booked_visit(language="es")
    payload = emails_of(appt)["confirmation"].payload or ""
    link = re.search(r"List-Unsubscribe: <https://book.example.test([^>]+)>", payload)
    assert link is not None
    page = client.get(link.group(1)).get_data(as_text=True)
    assert "¿Dejar de recibir nuestros correos en m" in page
    assert 'lang="es"' in page
    done = client.post(link.group(1)).get_data(as_text=True)
    assert "Se dio de baja" in done
    assert emails_of(appt)["confirmation"].status == MessageStatus.SUPPRESSED


@pytest.mark.parametrize(("step", "codes"), [("RCPT", [421, 451]), ("DATA", [421, 451])])
def test_4xx_answers_are_retried_with_backoff_then_sent(
    dispatcher: Dispatcher, smtp: SmtpServer, step: str, codes: list[int]
) -> None:
    appt = booked_visit()
    for code in codes:
        smtp.fail_next(step, code)
    report = dispatcher.dispatch_due(BOOKED)
    assert (report.sent, report.retrying) == (0, 1)
    row = emails_of(appt)["confirmation"]
    assert (row.status, row.error_code) == (MessageStatus.PENDING, codes[0])
    assert f"SMTP {codes[0]} at" in (row.error_message or "")
    assert BOOKED + timedelta(seconds=15) <= row.due_at <= BOOKED + timedelta(seconds=30)
    assert dispatcher.dispatch_due(BOOKED + timedelta(seconds=14)).claimed == 0
    dispatcher.dispatch_due(row.due_at)
    row = emails_of(appt)["confirmation"]
    assert (row.status, row.error_code) == (MessageStatus.PENDING, codes[1])
    dispatcher.dispatch_due(row.due_at)
    row = emails_of(appt)["confirmation"]
    assert (row.status, row.attempts, row.possible_duplicate) == (MessageStatus.SENT, 3, False)
    assert attempts_of(row) == ["retry", "retry", "sent"]
    assert len(smtp.received) == 1


def test_a_5xx_answer_fails_the_email_with_its_code(
    dispatcher: Dispatcher, smtp: SmtpServer
) -> None:
    smtp.fail_address(ADDRESS, 550)
    appt = booked_visit()
    report = dispatcher.dispatch_due(BOOKED)
    assert report.failed == 1
    row = emails_of(appt)["confirmation"]
    assert (row.status, row.status_reason, row.error_code) == (
        MessageStatus.FAILED,
        "rejected",
        550,
    )
    assert "Mailbox unavailable" in (row.error_message or "")
    assert attempts_of(row) == ["failed"]
    assert dispatcher.dispatch_due(BOOKED + timedelta(days=1)).claimed == 0
    # The connection stays usable: the next email goes through it.
    other = booked_visit(email="other@example.com")
    dispatcher.dispatch_due(BOOKED + timedelta(days=1))
    assert emails_of(other)["confirmation"].status == MessageStatus.SENT


def test_an_smtp_outage_heals_by_itself(app: Flask, smtp: SmtpServer) -> None:
    """Refused connections are retried with backoff; once the server answers, it is sent."""
    appt = booked_visit()
    port = smtp.port
    smtp.stop()
    with Dispatcher(app) as dispatcher:
        assert dispatcher.dispatch_due(BOOKED).retrying == 1
        row = emails_of(appt)["confirmation"]
        assert row.status == MessageStatus.PENDING and not row.in_doubt_since
        assert "SMTP connection failed" in (row.error_message or "")
        with SmtpServer(port) as back:
            assert dispatcher.dispatch_due(row.due_at).sent == 1
            assert len(back.received) == 1
    assert emails_of(appt)["confirmation"].status == MessageStatus.SENT


def test_a_connection_lost_during_data_is_sent_once_more_flagged(
    dispatcher: Dispatcher, smtp: SmtpServer
) -> None:
    """SMTP keeps no list to look an email up in: an email whose DATA got no answer is sent
    once more, flagged as a possible duplicate, with the same Message-ID."""
    appt = booked_visit()
    smtp.drop_next_data()
    report = dispatcher.dispatch_due(BOOKED)
    assert report.retrying == 1
    row = emails_of(appt)["confirmation"]
    assert row.in_doubt_since is not None
    dispatcher.dispatch_due(row.due_at)
    row = emails_of(appt)["confirmation"]
    assert (row.status, row.possible_duplicate) == (MessageStatus.SENT, True)
    assert attempts_of(row) == ["ambiguous", "sent"]
    first, second = smtp.messages
    assert first["Message-ID"] == second["Message-ID"]


def test_texts_and_emails_of_one_booking_go_out_together(
    dispatcher: Dispatcher, smtp: SmtpServer, texts_printed: Any
) -> None:
    add_message_schedules()
    appt = booked_visit(sms_consent=True)
    assert (
        set(texts_of(appt))
        == set(emails_of(appt))
        == {
            "confirmation",
            "instructions",
            "reminder",
        }
    )
    report = dispatcher.dispatch_due(BOOKED)
    assert report.sent_by_channel == {"sms": 1, "email": 1}
    assert f"SMS to {appt.patient.phone}" in texts_printed.getvalue()
    assert len(smtp.received) == 1


def test_dispatchers_racing_send_each_email_once(app: Flask, smtp: SmtpServer) -> None:
    import threading

    for n in range(12):
        booked_visit(email=f"patient{n}@example.com")
    dispatchers = [Dispatcher(app) for _ in range(3)]
    barrier = threading.Barrier(3)

    def run(dispatcher: Dispatcher) -> None:
        with app.app_context():
            barrier.wait()
            dispatcher.dispatch_due(BOOKED)
            db.session.remove()

    threads = [threading.Thread(target=run, args=(d,)) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for dispatcher in dispatchers:
        dispatcher.close()
    assert len(smtp.received) == 12
    assert smtp.duplicates() == {}


def test_the_smtp_backend_keeps_its_connection(smtp: SmtpServer) -> None:
    backend = SmtpBackend("127.0.0.1", smtp.port, "none", None, None, "a@b.example", 5.0)
    payload = (
        "From: a@b.example\nTo: x@example.com\nSubject: hi\nMessage-ID: <EM1@b.example>\n\nhello\n"
    )
    assert backend.send("x@example.com", payload).sid == "EM1"
    first = backend._local.smtp
    backend.send("y@example.com", payload)
    assert backend._local.smtp is first
    backend.close()
    assert [r.rcpt_tos for r in smtp.received] == [["x@example.com"], ["y@example.com"]]


def test_queue_email_is_the_entry_point_for_other_features(
    dispatcher: Dispatcher, smtp: SmtpServer
) -> None:
    """One email of a kind, under its own stored kind, exactly once; a second is refused."""
    appt = booked_visit()
    due = BOOKED + timedelta(hours=2)
    with unit_of_work():
        assert queue_email(appt, MessageKind.INSTRUCTIONS, BOOKED, due=due, stored_kind="again#1")
    row = emails_of(appt)["again#1"]
    assert (row.status, row.due_at, row.to_email) == (MessageStatus.PENDING, due, ADDRESS)
    with pytest.raises(IntegrityError), unit_of_work():
        queue_email(appt, MessageKind.INSTRUCTIONS, BOOKED, stored_kind="again#1")
    dispatcher.dispatch_due(due)
    dispatcher.dispatch_due(due)
    assert sorted(str(m["Subject"]).split()[0] for m in smtp.messages) == ["How", "Your"]


def test_one_address_gets_at_most_its_daily_cap(
    app: Flask, dispatcher: Dispatcher, smtp: SmtpServer
) -> None:
    """Anyone can type anyone's address: bookings by three phones to one inbox, cap 2."""
    app.config["MAIL_MAX_PER_ADDRESS_PER_DAY"] = 2
    appointments = [booked_visit(visit=VISIT + timedelta(hours=n)) for n in range(3)]
    other = booked_visit(email="someone.else@example.com")
    report = dispatcher.dispatch_due(BOOKED)
    assert (report.claimed, report.sent) == (3, 3)
    statuses = [emails_of(appt)["confirmation"] for appt in appointments]
    assert [row.status for row in statuses] == ["sent", "sent", "suppressed"]
    assert statuses[2].status_reason == "address_daily_cap"
    assert emails_of(other)["confirmation"].status == MessageStatus.SENT
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == [
        ADDRESS,
        ADDRESS,
        "someone.else@example.com",
    ]


@pytest.mark.parametrize(
    "visit",
    [local(2027, 3, 15, 8, 0), local(2026, 11, 2, 8, 30)],  # after spring-forward, fall-back
    ids=["spring-forward", "fall-back"],
)
def test_emails_keep_the_texts_cadence_across_dst(dispatcher: Dispatcher, visit: datetime) -> None:
    """Each email is due when its text is: sending hours and the hours before the visit
    are counted alike across the DST nights."""
    add_message_schedules()
    appt = booked_visit(visit=visit, now=visit - timedelta(days=6), sms_consent=True)
    texts, emails = texts_of(appt), emails_of(appt)
    assert set(texts) == set(emails) == {"confirmation", "instructions", "reminder"}
    for kind, text in texts.items():
        assert (emails[kind].due_at, emails[kind].status) == (text.due_at, text.status)
    reminder = emails["reminder"].due_at.astimezone(CHICAGO)
    assert (reminder.hour, reminder.minute) == (visit.astimezone(CHICAGO).hour, visit.minute)


def test_a_kept_connection_answering_421_is_replaced_at_once(smtp: SmtpServer) -> None:
    """A server closing an idle connection answers 421: the email goes on a new one."""
    backend = SmtpBackend("127.0.0.1", smtp.port, "none", None, None, "a@b.example", 5.0)
    payload = "From: a@b.example\nSubject: hi\nMessage-ID: <EM2@b.example>\n\nhello\n"
    backend.send("x@example.com", payload)
    first = backend._local.smtp
    smtp.fail_next("RCPT", 421)
    assert backend.send("y@example.com", payload).sid == "EM2"
    assert backend._local.smtp is not first
    smtp.fail_next("RCPT", 451)
    with pytest.raises(SendFailure) as refused:
        backend.send("z@example.com", payload)
    assert (refused.value.kind, refused.value.error_code) == (FailureKind.TRANSIENT, 451)
    backend.close()
    assert [r.rcpt_tos for r in smtp.received] == [["x@example.com"], ["y@example.com"]]


def test_a_server_without_starttls_is_a_transient_failure(smtp: SmtpServer) -> None:
    """SMTP_SECURITY=starttls never falls back to plain text: the email waits, unsent."""
    backend = SmtpBackend("127.0.0.1", smtp.port, "starttls", None, None, "a@b.example", 5.0)
    with pytest.raises(SendFailure) as refused:
        backend.send("x@example.com", "Subject: hi\nMessage-ID: <EM3@b.example>\n\nhello\n")
    assert refused.value.kind is FailureKind.TRANSIENT
    assert "STARTTLS" in refused.value.detail or "starttls" in refused.value.detail.lower()
    assert smtp.received == []
    backend.close()
