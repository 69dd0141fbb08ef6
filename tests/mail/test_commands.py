"""One command sends every channel; the mail settings refuse what cannot work."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from scheduler import create_app
from scheduler.mail.backends import ConsoleMailBackend
from scheduler.sms.backends import ConfigurationError
from tests.factories import book, booking_request, emails_of, make_slot, texts_of
from tests.mail.test_emails import BOOKED, VISIT
from tests.smtp_server import SmtpServer

pytestmark = pytest.mark.clock_sensitive


def test_messages_dispatch_sends_texts_and_emails_and_sms_dispatch_is_its_alias(
    runner: Any, smtp: SmtpServer
) -> None:
    first = book(booking_request(make_slot(starts_at=VISIT), email="a@example.com"), now=BOOKED)
    result = runner.invoke(args=["messages", "dispatch", "--now", BOOKED.isoformat()])
    assert result.exit_code == 0, result.output
    assert "claimed 2, sent 2 (1 email, 1 sms)" in result.output
    assert texts_of(first)["confirmation"].status == "sent"
    assert emails_of(first)["confirmation"].status == "sent"
    assert len(smtp.received) == 1
    assert "SMS to" in result.output  # the console SMS backend prints to the command's output

    second = book(
        booking_request(make_slot(starts_at=VISIT), email="b@example.com", sms_consent=False),
        now=BOOKED,
    )
    again = runner.invoke(args=["sms", "dispatch", "--now", BOOKED.isoformat()])
    assert again.exit_code == 0, again.output
    assert "claimed 1, sent 1 (1 email)" in again.output
    assert emails_of(second)["confirmation"].status == "sent"
    assert len(smtp.received) == 2


def test_the_console_mail_backend_prints_each_email(app: Any) -> None:
    appt = book(
        booking_request(make_slot(starts_at=VISIT), email="c@example.com", sms_consent=False),
        now=BOOKED,
    )
    out = io.StringIO()
    backend = ConsoleMailBackend(out)
    accepted = backend.send("c@example.com", emails_of(appt)["confirmation"].payload or "")
    printed = out.getvalue()
    assert "--- Email to c@example.com" in printed
    assert "Subject: Your appointment at" in printed
    assert appt.reference in printed and f"[attached: {appt.reference}.ics]" in printed
    assert accepted.sid.startswith("EM")


def test_mail_settings_that_cannot_work_stop_the_start(tmp_path: Path) -> None:
    base = {"DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "SECRET_KEY": "k"}
    with pytest.raises(ConfigurationError, match="MAIL_BACKEND must be one of console, smtp"):
        create_app({**base, "MAIL_BACKEND": "pigeon"})
    with pytest.raises(ConfigurationError, match="SMTP_SECURITY must be one of none, starttls"):
        create_app({**base, "MAIL_BACKEND": "smtp", "SMTP_SECURITY": "tls"})
    with pytest.raises(ConfigurationError, match="MAIL_FROM must be an email address"):
        create_app({**base, "MAIL_FROM": "the clinic"})
    app = create_app({**base, "MAIL_BACKEND": "smtp", "SMTP_SECURITY": "ssl", "SMTP_PORT": 465})
    assert app.config["SMTP_PORT"] == 465


def test_the_scheduler_process_dispatches_both_channels(
    app: Any, clock: Any, smtp: SmtpServer
) -> None:
    """The scheduler's dispatch job (run by APScheduler in `flask scheduler`) sends the
    texts and the emails that are due, on the clock."""
    from scheduler.jobs import build_scheduler
    from scheduler.sms.backends import ConsoleBackend
    from scheduler.sms.dispatch import Dispatcher

    appt = book(booking_request(make_slot(days_ahead=5), email="d@example.com"))
    printed = io.StringIO()
    with Dispatcher(app, backend=ConsoleBackend(printed)) as dispatcher:
        _, job = build_scheduler(app, dispatcher)
        job()
    assert texts_of(appt)["confirmation"].status == "sent"
    assert emails_of(appt)["confirmation"].status == "sent"
    assert f"SMS to {appt.patient.phone}" in printed.getvalue()
    assert [r.rcpt_tos for r in smtp.received] == [["d@example.com"]]
