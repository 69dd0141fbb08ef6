"""Dispatch with both channels: texts only, emails only, and texts and emails together,
side by side, through one dispatcher.

For each engine (a SQLite file in a temp dir, or a PostgreSQL database
``bench_<random>`` created here and dropped at the end), three runs on a fresh
outbox of due messages, each with its own servers in subprocesses (so they do
not share the GIL with the dispatcher):

- texts only: ``--texts`` texts to the fake Twilio server (``tests/twilio_server.py``);
- emails only: as many emails to a local SMTP server (``tests/smtp_server.py``,
  aiosmtpd), the MIME of a real confirmation (plain text, HTML, the .ics);
- both: the texts and the emails of the same appointments, at once.

Both servers answer every message after ``--delay`` seconds (100 ms: Twilio's API
and an SMTP relay take about that). The dispatcher is the application's own
(``SMS_SEND_CONCURRENCY`` sends in flight, one kept SMTP connection per send
thread), calling ``dispatch_due`` on a simulated clock (a weekday at 10:00 in
Chicago) until nothing is pending. After each run the servers say how many
messages they took and how many twice; the outbox must hold each as sent.

Run from the repository root::

    .venv/bin/python bench/messages_bench.py

Exit status 0 when every run sent each message exactly once, 1 otherwise, 2 when
the benchmark could not run. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from run_bench import BenchError, log, postgres_database, stop_process_group
from sms_bench import (
    IDLE_SLEEP_S,
    T0,
    VISIT_AFTER,
    Credentials,
    app_config,
    fake_twilio,
    fill_outbox,
    http_json,
    postgres_unreachable,
    tail,
    unfinished_texts,
)

ROOT = Path(__file__).resolve().parent.parent
SMTP_SERVER = ROOT / "tests" / "smtp_server.py"
TEXTS, EMAILS, BOTH = "texts only", "emails only", "texts + emails"


@dataclass
class Run:
    engine: str
    name: str
    texts: int
    emails: int
    seconds: float = 0.0
    cpu_s: float = 0.0
    sent_by_channel: dict[str, int] = field(default_factory=dict)
    db_status: dict[str, int] = field(default_factory=dict)
    twilio_accepted: int = 0
    twilio_duplicates: int = 0
    smtp_received: int = 0
    smtp_distinct: int = 0
    timed_out: bool = False

    @property
    def messages(self) -> int:
        return self.texts + self.emails

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def clean(self) -> bool:
        return (
            not self.timed_out
            and self.db_status == {"sent": self.messages}
            and self.twilio_accepted == self.texts
            and self.twilio_duplicates == 0
            and self.smtp_received == self.smtp_distinct == self.emails
        )


@contextmanager
def smtp_server(delay: float, log_path: Path) -> Iterator[tuple[int, list[str]]]:
    """tests/smtp_server.py in its own process group; yields its port and, once the block
    ended, the line it printed at exit (what it received)."""
    cmd = [sys.executable, str(SMTP_SERVER), "--port", "0", "--delay", str(delay)]
    with log_path.open("a") as err:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True
        )
    assert proc.stdout is not None
    summary: list[str] = []
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15.0)
        line = proc.stdout.readline().strip() if ready else ""
        if not line.isdigit():
            raise BenchError(f"SMTP server printed {line!r}:\n{tail(log_path)}")
        yield int(line), summary
    finally:
        stop_process_group(proc)
        summary.append(proc.stdout.read().strip())
        proc.stdout.close()


def email_payload(n: int) -> str:
    """An email the size and shape of a confirmation: text, HTML and a calendar file."""
    text = (
        f"Hello Bench,\n\nYou are booked for a consultation on Friday, January 16, 2026 at "
        f"10:00 AM at Freedom Spine & Pain Center, Bench Clinic.\nYour reference is B{n:07d}."
        "\n\nWhere: Boerne, TX\n\nTo see, change or cancel your appointment: "
        "http://127.0.0.1:5000/manage/B0000000/abcdefghijklmnop.qrstuv.wxyz0123456789abcdef\n"
    )
    message = EmailMessage()
    message["Subject"] = "Your appointment at Bench Clinic on Friday, January 16, 2026"
    message["From"] = "Freedom Spine & Pain Center <appointments@bench.example>"
    message["To"] = f"patient{n}@example.com"
    message["Date"] = format_datetime(T0)
    message["Message-ID"] = f"<EM{secrets.token_hex(16)}@bench.example>"
    message["List-Unsubscribe"] = f"<http://127.0.0.1:5000/email/unsubscribe/B{n:07d}/{'0' * 32}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text)
    paragraphs = "".join(f"<p>{line}</p>" for line in text.split("\n\n"))
    message.add_alternative(f"<!DOCTYPE html><html><body>{paragraphs}</body></html>", "html")
    calendar = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Bench//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:B{n:07d}@bench.example\r\nDTSTART:20260116T160000Z\r\n"
        "DTEND:20260116T163000Z\r\nSUMMARY:Consultation\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    message.add_attachment(
        calendar.encode(), maintype="text", subtype="calendar", filename=f"B{n:07d}.ics"
    )
    return message.as_string()


def fill(texts: int, emails: int) -> None:
    """A fresh outbox: ``max(texts, emails)`` appointments, a text and/or an email each,
    queued in turn (a text, then that booking's email), as bookings queue them."""
    from sqlalchemy import delete, insert, select

    from scheduler.extensions import db
    from scheduler.models import Channel, MessageKind, MessageStatus, OutboundMessage, utcnow

    fill_outbox(max(texts, emails))
    columns = [c for c in OutboundMessage.__table__.columns if c.name != "id"]
    queued_texts = [
        dict(row._mapping)
        for row in db.session.execute(select(*columns).order_by(OutboundMessage.id))
    ][:texts]
    db.session.execute(delete(OutboundMessage))
    appointment_ids = _appointment_ids()
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for n, appointment_id in enumerate(appointment_ids):
        if n < texts:
            rows.append(queued_texts[n])
        if n < emails:
            rows.append(
                {
                    **(queued_texts[0] if queued_texts else {}),
                    "appointment_id": appointment_id,
                    "kind": MessageKind.CONFIRMATION,
                    "channel": Channel.EMAIL,
                    "to_phone": None,
                    "to_email": f"patient{n}@example.com",
                    "language": "en",
                    "subject": "Your appointment at Bench Clinic",
                    "body": f"Bench email {n}",
                    "payload": email_payload(n),
                    "status": MessageStatus.PENDING,
                    "due_at": T0,
                    "send_before": T0 + VISIT_AFTER,
                    "attempts": 0,
                    "possible_duplicate": False,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    # One at a time, so the ids follow the list (a text, then its booking's email).
    for row in rows:
        db.session.execute(insert(OutboundMessage).values(**row))
    db.session.commit()


def _appointment_ids() -> list[int]:
    from sqlalchemy import select

    from scheduler.extensions import db
    from scheduler.models import Appointment

    return list(db.session.scalars(select(Appointment.id).order_by(Appointment.id)))


def dispatch_all(run: Run, app: Any, timeout_s: float) -> None:
    from scheduler.sms.dispatch import Dispatcher

    with Dispatcher(app) as dispatcher:
        started = time.monotonic()
        cpu_started = time.process_time()
        while True:
            now = T0 + timedelta(seconds=time.monotonic() - started)
            report = dispatcher.dispatch_due(now)
            for channel, count in report.sent_by_channel.items():
                run.sent_by_channel[channel] = run.sent_by_channel.get(channel, 0) + count
            if not report.claimed and unfinished_texts() == 0:
                break
            if time.monotonic() - started > timeout_s:
                run.timed_out = True
                break
            if not report.claimed:
                time.sleep(IDLE_SLEEP_S)
        run.seconds = time.monotonic() - started
        run.cpu_s = time.process_time() - cpu_started


def outbox_status() -> dict[str, int]:
    from sqlalchemy import func, select

    from scheduler.extensions import db
    from scheduler.models import OutboundMessage

    rows = db.session.execute(
        select(OutboundMessage.status, func.count()).group_by(OutboundMessage.status)
    ).all()
    return {status: count for status, count in rows}


def bench_run(
    engine: str, name: str, database_url: str, texts: int, emails: int, args: Any, tmp: Path
) -> Run:
    from scheduler import create_app
    from scheduler.extensions import db

    run = Run(engine, name, texts, emails)
    credentials = Credentials("AC" + secrets.token_hex(16), secrets.token_urlsafe(24))
    with ExitStack() as stack:
        base_url = stack.enter_context(
            fake_twilio(args.delay, 0, credentials, tmp / "twilio-server.log")
        )
        port, smtp_summary = stack.enter_context(smtp_server(args.delay, tmp / "smtp.log"))
        config = app_config(
            database_url,
            base_url,
            credentials,
            args,
            MAIL_BACKEND="smtp",
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=port,
            SMTP_SECURITY="none",
            MAIL_FROM="Freedom Spine & Pain Center <appointments@bench.example>",
        )
        app = create_app(config)
        try:
            with app.app_context():
                fill(texts, emails)
                http_json(f"{base_url}/_reset", method="POST")
                dispatch_all(run, app, args.timeout)
                stats = http_json(f"{base_url}/_stats")
                run.db_status = outbox_status()
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
    run.twilio_accepted = int(stats["accepted"])
    run.twilio_duplicates = int(stats["duplicates"])
    words = (smtp_summary[0] if smtp_summary else "").split()
    if len(words) == 4:
        run.smtp_received, run.smtp_distinct = int(words[1]), int(words[3])
    log(
        f"{engine} {name}: {run.messages} messages in {run.seconds:.2f} s = {run.rate:.1f}/s "
        f"(sent {run.sent_by_channel}); Twilio took {run.twilio_accepted} "
        f"({run.twilio_duplicates} twice), SMTP took {run.smtp_received} "
        f"({run.smtp_distinct} distinct); outbox {run.db_status}"
    )
    return run


def bench_engine(engine: str, args: Any) -> list[Run]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="messages-bench-")))
        if engine == "sqlite":
            url = f"sqlite:///{tmp / 'bench.sqlite3'}"
        else:
            reason = postgres_unreachable(args.pg_admin_url)
            if reason:
                log(f"postgresql skipped: {reason}")
                return []
            url = stack.enter_context(postgres_database(args.pg_admin_url))
        n = args.messages
        return [
            bench_run(engine, TEXTS, url, n, 0, args, tmp),
            bench_run(engine, EMAILS, url, 0, n, args, tmp),
            bench_run(engine, BOTH, url, n, n, args, tmp),
        ]


def print_report(runs: list[Run]) -> None:
    print()
    print(
        f"{'engine':<11}{'run':<16}{'texts':>7}{'emails':>8}{'seconds':>9}"
        f"{'msgs/s':>9}{'CPU s':>8}  exactly once"
    )
    for run in runs:
        print(
            f"{run.engine:<11}{run.name:<16}{run.texts:>7}{run.emails:>8}{run.seconds:>9.2f}"
            f"{run.rate:>9.1f}{run.cpu_s:>8.2f}  {'yes' if run.clean else 'NO'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1/postgres"),
    )
    parser.add_argument("--messages", type=int, default=1000, help="texts, and emails, per run")
    parser.add_argument("--concurrency", type=int, default=32, help="SMS_SEND_CONCURRENCY")
    parser.add_argument("--delay", type=float, default=0.1, help="server seconds per answer")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    machine = f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    log(f"messages bench on {machine}; load average {load}")
    runs: list[Run] = []
    try:
        for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
            runs += bench_engine(engine, args)
    except BenchError as exc:
        log(f"benchmark could not run: {exc}")
        return 2
    print_report(runs)
    return 0 if runs and all(run.clean for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
