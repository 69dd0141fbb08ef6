"""SMS dispatch benchmark: the bounded send pool against one text at a time, side by side,
and the dispatcher killed with SIGKILL mid-run.

For each engine (a SQLite file in a temp dir, or a PostgreSQL database
``bench_<random>`` created here and dropped at the end), five runs, each with
its own fake Twilio server (``tests/twilio_server.py`` in a subprocess, so it
does not share the GIL with the dispatcher) answering every request after 100 ms,
and a fresh outbox of due texts:

1. pool: 2,000 texts, ``SMS_SEND_CONCURRENCY=32``;
2. one at a time: ``SMS_SEND_CONCURRENCY=1`` on 300 texts (2,000 would take 200 s);
3. failures: the server answers 1 request in 5 with a 500 or a 429 (in turn),
   2,000 texts, the pool, retries within the run (backoff 0.05 s up to 0.5 s);
4. process: 2,000 texts sent by a dispatcher process (this script with ``--child``)
   that runs as the scheduler's dispatcher does: ``dispatch_due`` again and again,
   woken by its heartbeat when another dispatcher's lease runs out;
5. process, 5 kills: the same, but the dispatcher process is killed with SIGKILL
   five times (each time 1/6 more of the texts have reached the server) and a new
   one started at once. Leases and heartbeats are the defaults (20 s, 5 s).

Runs 1-3 dispatch in this process, ``dispatch_due(now)`` in a loop; every run uses a
simulated clock that starts on a weekday at 10:00 in Chicago (inside sending
hours) and moves with the real one, until no text is pending or sending (leases
follow the real clock). After each run the server's ``/_stats`` says how many texts
it accepted and how many twice; the outbox must hold every text as sent with its
own provider id. The kill run also reports the texts flagged as possible
duplicates, those found at the provider instead of being resent, and the time from
each kill to the moment the killed process's texts were taken back.

Run from the repository root::

    .venv/bin/python bench/sms_bench.py

Exit status: 0 when the runs completed (whether the goals were met or not, as
the PASS / FAIL lines say), 2 when the benchmark itself could not run, 130 on
Ctrl-C. A JSON summary goes to ``bench/results/<run id>/sms_summary.json``
(ignored by git). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# The HTTP benchmark beside this file: its process and database helpers serve both.
from run_bench import (
    BenchError,
    _exit_on_sigterm,
    log,
    postgres_database,
    stop_process_group,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
TWILIO_SERVER = ROOT / "tests" / "twilio_server.py"
SEND_TZ = ZoneInfo("America/Chicago")
# The simulated clock starts here: a Tuesday, 10:00 in Chicago, inside sending hours.
T0 = datetime(2026, 1, 13, 10, 0, tzinfo=SEND_TZ).astimezone(UTC)
VISIT_AFTER = timedelta(days=3)  # the visit (send_before) of every text
FROM_NUMBER = "+12105550100"
SERVER_START_TIMEOUT_S = 15.0
IDLE_SLEEP_S = 0.02  # between dispatch_due calls that claimed nothing

# Retries within the run: backoff 0.025-0.05 s after the first failure, at most 0.5 s.
RETRY_BASE_SECONDS = 0.05
RETRY_MAX_SECONDS = 0.5
MAX_ATTEMPTS = 20

# Goals checked at the end.
MIN_RATIO = 10.0
MIN_POOL_RATE = 100.0

POOL, SERIAL, FAILURES = "pool", "one at a time", "pool, 1 in 5 fail"
PROCESS, KILLED = "process", "process, 5 kills"
CHILD_ENV = "SMS_BENCH_CHILD"  # the settings of a dispatcher process (--child), as JSON
CHILD_IDLE_S = 0.5  # a dispatcher process with nothing to claim looks again after this
STATS_POLL_S = 0.05
# Kill to retake, goal: about 30 s with the default 20 s lease and 5 s heartbeat.
MAX_RETAKE_S = 30.0


# --------------------------------------------------------------------------- results


@dataclass
class RunResult:
    engine: str
    name: str
    texts: int
    concurrency: int
    fail_every: int
    seconds: float = 0.0
    cpu_s: float = 0.0  # CPU of this process (dispatcher, twilio client, SQLite)
    timed_out: bool = False
    # From the fake server's /_stats.
    requests: int = 0
    accepted: int = 0
    duplicates: int = 0  # (to, body) pairs accepted more than once
    by_status: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    # From the outbox after the run.
    db_status: dict[str, int] = field(default_factory=dict)
    distinct_sids: int = 0
    attempts_recorded: int = 0
    attempt_outcomes: dict[str, int] = field(default_factory=dict)  # "outcome HTTP status"
    unanswered_attempts: list[str] = field(default_factory=list)  # failed without HTTP status
    possible_duplicates: int = 0  # rows flagged after an attempt of unknown outcome
    # Fault runs: dispatcher processes killed, and what that cost.
    kills: int = 0
    retake_s: list[float] = field(default_factory=list)  # kill -> its texts taken back
    taken_back: int = 0
    reconciled: int = 0  # found at the provider, not sent again
    list_requests: int = 0  # Messages list requests the server answered
    distinct_accepted: int = 0
    # Summed DispatchReports.
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    suppressed: int = 0

    @property
    def rate(self) -> float:
        return self.texts / self.seconds if self.seconds else 0.0

    @property
    def lost(self) -> int:
        """Texts the server never accepted (each text has its own number and body)."""
        return max(self.texts - self.distinct_accepted, 0)

    @property
    def db_sent(self) -> int:
        return self.db_status.get("sent", 0)

    @property
    def db_unsent(self) -> int:
        return self.texts - self.db_sent

    @property
    def failed_answers(self) -> int:
        return self.by_status.get("500", 0) + self.by_status.get("429", 0)

    @property
    def clean(self) -> bool:
        """Zero duplicates and zero losses, by the server and by the outbox."""
        return (
            not self.timed_out
            and self.duplicates == 0
            and self.accepted == self.texts
            and self.db_sent == self.texts
            and self.distinct_sids == self.texts
            and self.possible_duplicates == 0
        )


@dataclass
class EngineReport:
    engine: str
    runs: list[RunResult] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None

    def get(self, name: str) -> RunResult | None:
        return next((r for r in self.runs if r.name == name), None)


# --------------------------------------------------------------------------- helpers


def http_json(url: str, method: str = "GET", timeout: float = 10.0) -> Any:
    data = b"" if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "".join(path.read_text().splitlines(keepends=True)[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- processes


def postgres_unreachable(admin_url: str) -> str | None:
    """Why PostgreSQL cannot be used (None when it can): the reason to print when skipping."""
    from sqlalchemy import create_engine, text

    try:
        admin = create_engine(admin_url, connect_args={"connect_timeout": 5})
    except Exception as exc:  # a bad URL or a missing driver
        return f"{type(exc).__name__}: {exc}"
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        admin.dispose()
    return None


@dataclass(frozen=True)
class Credentials:
    account_sid: str
    auth_token: str


@contextmanager
def fake_twilio(
    delay: float, fail_every: int, credentials: Credentials, log_path: Path
) -> Iterator[str]:
    """tests/twilio_server.py in its own process group until the block ends; yields its URL."""
    cmd = [
        sys.executable,
        str(TWILIO_SERVER),
        "--port",
        "0",
        "--delay",
        str(delay),
        f"--account-sid={credentials.account_sid}",
        # One argument with "=": a random token may start with "-", which argparse would
        # otherwise take for an option.
        f"--auth-token={credentials.auth_token}",
    ]
    if fail_every:
        cmd += ["--fail-every", str(fail_every), "--fail-statuses", "500,429"]
    with log_path.open("a") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,  # Ctrl-C reaches us only; we stop it below
        )
    try:
        yield read_base_url(proc, log_path)
    finally:
        stop_process_group(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def read_base_url(proc: subprocess.Popen[str], log_path: Path) -> str:
    """The one line the fake server prints when it is ready."""
    assert proc.stdout is not None
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            line = proc.stdout.readline().strip()
            if line.startswith("http://"):
                return line
            raise BenchError(
                f"fake Twilio server printed {line!r} (exit {proc.poll()}):\n{tail(log_path)}"
            )
    raise BenchError(f"fake Twilio server not ready in {SERVER_START_TIMEOUT_S:.0f} s")


# --------------------------------------------------------------------------- app and data


def app_config(
    database_url: str, base_url: str, credentials: Credentials, args: argparse.Namespace, **sms: Any
) -> dict[str, Any]:
    """Settings for the in-process app; these win over instance/config.py and the environment."""
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "PUBLIC_BASE_URL": "http://127.0.0.1:5000",
        "DISPLAY_TIMEZONE": "America/Chicago",
        "SMS_SENDING_HOURS": "08:00-21:00",
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": credentials.account_sid,
        "TWILIO_AUTH_TOKEN": credentials.auth_token,
        "TWILIO_FROM_NUMBER": FROM_NUMBER,
        "TWILIO_MESSAGING_SERVICE_SID": None,
        "TWILIO_API_BASE_URL": base_url,
        "SMS_SEND_CONCURRENCY": args.concurrency,
        "SMS_RETRY_BASE_SECONDS": RETRY_BASE_SECONDS,
        "SMS_RETRY_MAX_SECONDS": RETRY_MAX_SECONDS,
        "SMS_MAX_ATTEMPTS": MAX_ATTEMPTS,
        **sms,
    }


def fill_outbox(count: int) -> None:
    """A fresh schema and ``count`` due texts (one location, slot, patient, appointment each).

    Needs an app context. Every text has its own number and body, so the server
    can tell a duplicate from another text.
    """
    from sqlalchemy import insert

    from scheduler.extensions import db
    from scheduler.models import (
        Appointment,
        Location,
        MessageKind,
        MessageStatus,
        OutboundMessage,
        Patient,
        Slot,
        utcnow,
    )

    db.drop_all()
    db.create_all()
    now = utcnow()
    visit = T0 + VISIT_AFTER
    location_id = db.session.execute(
        insert(Location)
        .values(
            slug="bench",
            name="Bench Clinic",
            code="BNC",
            address="1 Bench Street, Boerne, TX",
            phone="+12105550199",
            timezone="America/Chicago",
        )
        .returning(Location.id)
    ).scalar_one()
    slot_id = db.session.execute(
        insert(Slot)
        .values(
            location_id=location_id,
            starts_at=visit,
            ends_at=visit + timedelta(minutes=30),
            capacity=count,
            booked_count=count,
        )
        .returning(Slot.id)
    ).scalar_one()
    phones = [f"+1830{n:07d}" for n in range(count)]
    patient_ids = db.session.scalars(
        insert(Patient).returning(Patient.id, sort_by_parameter_order=True),
        [
            {
                "first_name": "Bench",
                "last_name": f"Patient {n}",
                "phone": phones[n],
                "language": "en",
                "sms_consent": True,
                "created_at": now,
            }
            for n in range(count)
        ],
    ).all()
    appointment_ids = db.session.scalars(
        insert(Appointment).returning(Appointment.id, sort_by_parameter_order=True),
        [
            {
                "reference": f"B{n:07d}",
                "slot_id": slot_id,
                "patient_id": patient_id,
                "status": "booked",
                "source": "bench",
                "manage_nonce": secrets.token_hex(16),
                "created_at": now,
                "updated_at": now,
                "version": 1,
            }
            for n, patient_id in enumerate(patient_ids)
        ],
    ).all()
    db.session.execute(
        insert(OutboundMessage),
        [
            {
                "appointment_id": appointment_id,
                "kind": MessageKind.CONFIRMATION,
                "to_phone": phones[n],
                "language": "en",
                "body": (
                    f"Bench text {n}: your visit at Bench Clinic is booked for Fri Jan 16 "
                    "at 10:00 AM. Reply C to confirm."
                ),
                "status": MessageStatus.PENDING,
                "due_at": T0,
                "send_before": visit,
                "attempts": 0,
                "possible_duplicate": False,
                "created_at": now,
                "updated_at": now,
            }
            for n, appointment_id in enumerate(appointment_ids)
        ],
    )
    db.session.commit()


def unfinished_texts() -> int:
    """Texts still pending (a retry waiting for its time) or being sent."""
    from sqlalchemy import func, select

    from scheduler.extensions import db
    from scheduler.models import MessageStatus, OutboundMessage

    count = db.session.scalar(
        select(func.count(OutboundMessage.id)).where(
            OutboundMessage.status.in_([MessageStatus.PENDING, MessageStatus.SENDING])
        )
    )
    db.session.rollback()  # no transaction (and snapshot) left open between calls
    return int(count or 0)


def check_outbox(result: RunResult) -> None:
    """Statuses, distinct provider ids and recorded attempts, from the database."""
    from sqlalchemy import func, select

    from scheduler.extensions import db
    from scheduler.models import MessageAttempt, OutboundMessage

    om = OutboundMessage
    result.db_status = {
        str(status): int(n)
        for status, n in db.session.execute(
            select(om.status, func.count(om.id)).group_by(om.status)
        ).all()
    }
    result.distinct_sids = int(
        db.session.scalar(
            select(func.count(func.distinct(om.provider_sid))).where(om.status == "sent")
        )
        or 0
    )
    ma = MessageAttempt
    outcomes = db.session.execute(
        select(ma.outcome, ma.http_status, func.count(ma.id)).group_by(ma.outcome, ma.http_status)
    ).all()
    result.attempt_outcomes = {
        f"{outcome} {status or '-'}": int(n) for outcome, status, n in sorted(outcomes, key=str)
    }
    result.attempts_recorded = sum(int(n) for o, _, n in outcomes if o != "lease_expired")
    result.unanswered_attempts = [
        f"text {message_id} attempt {number}: {outcome}: {detail}"
        for message_id, number, outcome, detail in db.session.execute(
            select(ma.message_id, ma.number, ma.outcome, ma.detail)
            .where(
                ma.outcome.not_in(["sent", "reconciled", "lease_expired"]),
                ma.http_status.is_(None),
            )
            .order_by(ma.id)
        ).all()
    ]
    result.possible_duplicates = int(
        db.session.scalar(select(func.count(om.id)).where(om.possible_duplicate.is_(True))) or 0
    )
    counts = {
        o: int(n)
        for o, n in db.session.execute(
            select(ma.outcome, func.count(ma.id)).group_by(ma.outcome)
        ).all()
    }
    result.reconciled = counts.get("reconciled", 0)
    result.taken_back = counts.get("lease_expired", 0)
    db.session.rollback()


def retake_seconds(worker: str, killed_at: datetime) -> float | None:
    """From a kill to the first of the killed dispatcher's texts being taken back."""
    from sqlalchemy import func, select

    from scheduler.extensions import db
    from scheduler.models import MessageAttempt

    ma = MessageAttempt
    first = db.session.scalar(
        select(func.min(ma.finished_at)).where(ma.worker == worker, ma.outcome == "lease_expired")
    )
    db.session.rollback()
    return (first - killed_at).total_seconds() if first else None


# --------------------------------------------------------------------------- one run


def dispatch_all(result: RunResult, app: Any, timeout_s: float) -> None:
    """dispatch_due on the simulated clock until no text is pending or sending (or timeout)."""
    from scheduler.sms.dispatch import Dispatcher

    dispatcher = Dispatcher(app)
    try:
        started = time.monotonic()
        cpu_started = time.process_time()
        deadline = started + timeout_s
        while True:
            now = T0 + timedelta(seconds=time.monotonic() - started)
            report = dispatcher.dispatch_due(now)
            for name in ("claimed", "sent", "retrying", "failed", "suppressed"):
                setattr(result, name, getattr(result, name) + getattr(report, name))
            if not report.claimed and unfinished_texts() == 0:
                break
            if time.monotonic() > deadline:
                result.timed_out = True
                break
            if not report.claimed:
                time.sleep(IDLE_SLEEP_S)  # retries waiting for their time
        result.seconds = time.monotonic() - started
        result.cpu_s = time.process_time() - cpu_started
    except BaseException:
        # Ctrl-C or an error: drop the queued sends rather than wait for each of them.
        dispatcher.pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        dispatcher.close()


def bench_run(
    engine: str,
    name: str,
    database_url: str,
    texts: int,
    concurrency: int,
    fail_every: int,
    args: argparse.Namespace,
    tmp: Path,
) -> RunResult:
    """One run: its own fake server, a fresh outbox of ``texts`` due texts, dispatch, checks."""
    from scheduler import create_app
    from scheduler.extensions import db

    result = RunResult(engine, name, texts, concurrency, fail_every)
    credentials = Credentials("AC" + secrets.token_hex(16), secrets.token_urlsafe(24))
    server_log = tmp / "twilio-server.log"
    with fake_twilio(args.delay, fail_every, credentials, server_log) as base_url:
        config = app_config(
            database_url, base_url, credentials, args, SMS_SEND_CONCURRENCY=concurrency
        )
        app = create_app(config)
        try:
            with app.app_context():
                fill_outbox(texts)
                http_json(f"{base_url}/_reset", method="POST")
                dispatch_all(result, app, args.timeout)
                stats = http_json(f"{base_url}/_stats")
                check_outbox(result)
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
    read_stats(result, stats)
    if stats.get("in_flight"):
        log(f"{engine} {name}: WARNING: {stats['in_flight']} requests still in flight")
    log(
        f"{engine} {name}: {texts} texts in {result.seconds:.2f} s = {result.rate:.1f} texts/s"
        f"{' (TIMED OUT)' if result.timed_out else ''}; server: {result.requests} requests, "
        f"{result.accepted} accepted, {result.duplicates} duplicated, by status "
        f"{result.by_status}; outbox: {result.db_status}, attempts {result.attempt_outcomes}"
    )
    return result


def read_stats(result: RunResult, stats: dict[str, Any], own_requests: int = 1) -> None:
    result.requests = int(stats["requests"])
    result.accepted = int(stats["accepted"])
    result.distinct_accepted = int(stats["distinct_accepted"])
    result.duplicates = int(stats["duplicates"])
    result.by_status = {str(k): int(v) for k, v in stats["by_status"].items()}
    result.list_requests = sum(int(n) for n in stats.get("list_requests", {}).values())
    # Less the connections of our own /_stats requests.
    result.connections = max(int(stats.get("connections", 0)) - own_requests, 0)


# --------------------------------------------------------------------------- killed processes


def child_main() -> int:
    """A dispatcher process, as the scheduler runs it: dispatch, look again when idle or
    woken by the heartbeat (a lease ran out), until nothing is pending or sending."""
    from scheduler import create_app
    from scheduler.sms.dispatch import Dispatcher

    settings = json.loads(os.environ[CHILD_ENV])
    app = create_app(settings["config"])
    start_epoch = float(settings["start_epoch"])
    with app.app_context(), Dispatcher(app) as dispatcher:
        print(f"worker {dispatcher.worker}", flush=True)
        while True:
            now = T0 + timedelta(seconds=time.time() - start_epoch)
            report = dispatcher.dispatch_due(now)
            if report.claimed:
                continue
            if unfinished_texts() == 0:
                return 0
            dispatcher.expired_seen.wait(CHILD_IDLE_S)


def start_child(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[str], str]:
    """A dispatcher process; returns it and its worker name (the one its claims carry)."""
    with log_path.open("a") as err:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline().strip() if ready else ""
    if not line.startswith("worker "):
        proc.kill()
        proc.wait()
        raise BenchError(f"dispatcher process did not start ({line!r}):\n{tail(log_path)}")
    return proc, line.removeprefix("worker ")


def process_run(
    engine: str,
    name: str,
    database_url: str,
    texts: int,
    kills: int,
    args: argparse.Namespace,
    tmp: Path,
) -> RunResult:
    """Texts sent by dispatcher processes; SIGKILL ``kills`` times, each replaced at once."""
    from scheduler import create_app
    from scheduler.extensions import db

    result = RunResult(engine, name, texts, args.concurrency, 0)
    credentials = Credentials("AC" + secrets.token_hex(16), secrets.token_urlsafe(24))
    server_log, child_log = tmp / "twilio-server.log", tmp / f"dispatcher-{name}.log"
    with fake_twilio(args.delay, 0, credentials, server_log) as base_url:
        config = app_config(database_url, base_url, credentials, args)
        app = create_app(config)
        polls = 0
        try:
            with app.app_context():
                fill_outbox(texts)
                db.session.remove()
            http_json(f"{base_url}/_reset", method="POST")
            env = {
                **os.environ,
                CHILD_ENV: json.dumps({"config": config, "start_epoch": time.time()}),
            }
            thresholds = [texts * k // (kills + 1) for k in range(1, kills + 1)]
            killed: list[tuple[str, datetime]] = []
            started = time.monotonic()
            cpu_started = time.process_time()
            child, worker = start_child(env, child_log)
            try:
                while child.poll() is None:
                    if time.monotonic() - started > args.timeout:
                        result.timed_out = True
                        break
                    accepted = int(http_json(f"{base_url}/_stats")["accepted"])
                    polls += 1
                    if thresholds and accepted >= thresholds[0]:
                        child.send_signal(signal.SIGKILL)
                        killed.append((worker, datetime.now(UTC)))
                        child.wait()
                        log(f"{engine} {name}: killed {worker} at {accepted} accepted")
                        thresholds.pop(0)
                        child, worker = start_child(env, child_log)
                        continue
                    time.sleep(STATS_POLL_S)
            finally:
                if child.poll() is None:
                    child.kill()
                child.wait()
                if child.stdout is not None:
                    child.stdout.close()
            if child.returncode not in (0, -signal.SIGKILL):
                raise BenchError(
                    f"dispatcher process exited with {child.returncode}:\n{tail(child_log)}"
                )
            result.seconds = time.monotonic() - started
            result.cpu_s = time.process_time() - cpu_started
            result.kills = len(killed)
            stats = http_json(f"{base_url}/_stats")
            with app.app_context():
                check_outbox(result)
                for gone, at in killed:
                    seconds = retake_seconds(gone, at)
                    if seconds is not None:
                        result.retake_s.append(seconds)
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
    read_stats(result, stats, own_requests=polls + 1)
    log(
        f"{engine} {name}: {texts} texts in {result.seconds:.2f} s = {result.rate:.1f} texts/s"
        f"{' (TIMED OUT)' if result.timed_out else ''}; {result.kills} kills, retaken after "
        f"{', '.join(f'{s:.1f}' for s in result.retake_s) or '-'} s; server: "
        f"{result.requests} requests, {result.accepted} accepted, {result.duplicates} "
        f"duplicated, {result.list_requests} list requests; outbox: {result.db_status}, "
        f"{result.reconciled} reconciled, {result.possible_duplicates} flagged, "
        f"attempts {result.attempt_outcomes}"
    )
    return result


def bench_engine(engine: str, args: argparse.Namespace, report: EngineReport) -> None:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"sms-bench-{engine}-")))
        if engine == "sqlite":
            database_url = f"sqlite:///{tmp / 'sms.sqlite3'}"
        else:
            database_url = stack.enter_context(postgres_database(args.pg_admin_url))
        plan = [
            (POOL, args.texts, args.concurrency, 0),
            (SERIAL, args.serial_texts, 1, 0),
            (FAILURES, args.texts, args.concurrency, args.fail_every),
        ]
        if args.only_faults:
            plan = []
        for name, texts, concurrency, fail_every in plan:
            log(
                f"{engine} {name}: {texts} texts, concurrency {concurrency}, "
                f"server delay {args.delay * 1000:.0f} ms"
                + (f", 1 request in {fail_every} answered 500/429" if fail_every else "")
            )
            report.runs.append(
                bench_run(engine, name, database_url, texts, concurrency, fail_every, args, tmp)
            )
        for name, kills in ((PROCESS, 0), (KILLED, args.kills)):
            log(
                f"{engine} {name}: {args.texts} texts, dispatcher processes, concurrency "
                f"{args.concurrency}, server delay {args.delay * 1000:.0f} ms, {kills} SIGKILLs"
            )
            report.runs.append(
                process_run(engine, name, database_url, args.texts, kills, args, tmp)
            )


# --------------------------------------------------------------------------- report


def goal_lines(reports: list[EngineReport]) -> list[tuple[bool, str]]:
    lines: list[tuple[bool, str]] = []
    for r in reports:
        if r.skipped:
            continue
        if r.error:
            lines.append((False, f"{r.engine}: benchmark did not complete: {r.error}"))
        pool, serial = r.get(POOL), r.get(SERIAL)
        if pool and serial:
            ratio = pool.rate / serial.rate if serial.rate else 0.0
            lines.append(
                (
                    ratio >= MIN_RATIO,
                    f"{r.engine}: pool / one at a time = {ratio:.1f} ({pool.rate:.1f} texts/s on "
                    f"{pool.texts} texts vs {serial.rate:.1f} texts/s on {serial.texts} texts) "
                    f"(goal >= {MIN_RATIO:.0f})",
                )
            )
        if pool:
            lines.append(
                (
                    pool.rate >= MIN_POOL_RATE and not pool.timed_out,
                    f"{r.engine}: pool {pool.rate:.1f} texts/s at concurrency "
                    f"{pool.concurrency} (goal >= {MIN_POOL_RATE:.0f})",
                )
            )
        process, killed = r.get(PROCESS), r.get(KILLED)
        if killed:
            retakes = sorted(killed.retake_s)
            slowest = retakes[-1] if retakes else float("inf")
            lines.append(
                (
                    killed.kills == len(retakes) > 0 and slowest <= MAX_RETAKE_S,
                    f"{r.engine}: {killed.kills} kills, each one's texts taken back after "
                    f"{', '.join(f'{x:.1f}' for x in retakes) or '-'} s "
                    f"(goal <= {MAX_RETAKE_S:.0f} s with the default lease and heartbeat)",
                )
            )
            lines.append(
                (
                    killed.duplicates == 0
                    and killed.lost == 0
                    and killed.possible_duplicates == 0
                    and not killed.timed_out,
                    f"{r.engine} {KILLED}: {killed.duplicates} sent twice, {killed.lost} lost "
                    f"(by the server's count), {killed.possible_duplicates} flagged, "
                    f"{killed.reconciled} found at the provider and not resent, "
                    f"{killed.taken_back} taken back (goal 0, 0, 0)",
                )
            )
        if killed and process and process.rate:
            lines.append(
                (
                    True,
                    f"{r.engine}: throughput with 5 kills {killed.rate:.1f} texts/s vs "
                    f"{process.rate:.1f} without = {killed.rate / process.rate:.2f} "
                    f"(reported, no goal: the run ends when the last kill's leases run out)",
                )
            )
        for run in r.runs:
            failures = ""
            passed = run.clean
            if run.fail_every:
                failures = (
                    f", through {run.failed_answers} failed answers "
                    f"(500: {run.by_status.get('500', 0)}, 429: {run.by_status.get('429', 0)})"
                )
                passed &= run.failed_answers > 0  # else the run proves nothing about retries
            lines.append(
                (
                    passed,
                    f"{r.engine} {run.name}: {run.duplicates} duplicates, {run.lost} lost by the "
                    f"server, {run.db_unsent} not sent in the outbox, {run.distinct_sids} "
                    f"distinct provider ids for {run.texts} texts{failures}"
                    f"{', TIMED OUT' if run.timed_out else ''} (goal 0, 0, 0, {run.texts})",
                )
            )
    return lines


def print_report(reports: list[EngineReport]) -> None:
    columns = [
        ("engine", 11, "<"),
        ("run", 18, "<"),
        ("texts", 6, ">"),
        ("conc", 5, ">"),
        ("seconds", 8, ">"),
        ("texts/s", 8, ">"),
        ("cpu ms", 7, ">"),
        ("requests", 9, ">"),
        ("accepted", 9, ">"),
        ("dups", 5, ">"),
        ("lost", 5, ">"),
        ("500", 5, ">"),
        ("429", 5, ">"),
        ("db sent", 8, ">"),
        ("attempts", 9, ">"),
        ("conns", 6, ">"),
        ("kills", 6, ">"),
        ("recon", 6, ">"),
        ("flag", 5, ">"),
    ]
    header = "".join(f"{name:{align}{width}}" for name, width, align in columns)
    print()
    print(header)
    print("-" * len(header))
    for r in reports:
        for m in r.runs:
            cpu_ms = m.cpu_s * 1000 / m.texts if m.texts else 0.0
            print(
                f"{m.engine:<11}{m.name:<18}{m.texts:>6}{m.concurrency:>5}{m.seconds:>8.2f}"
                f"{m.rate:>8.1f}{cpu_ms:>7.2f}{m.requests:>9}{m.accepted:>9}{m.duplicates:>5}"
                f"{m.lost:>5}{m.by_status.get('500', 0):>5}{m.by_status.get('429', 0):>5}"
                f"{m.db_sent:>8}{m.attempts_recorded:>9}{m.connections:>6}"
                f"{m.kills:>6}{m.reconciled:>6}{m.possible_duplicates:>5}"
            )
    print(
        "cpu ms: CPU of this process per text; requests/accepted/dups/500/429/conns: the fake "
        "server's /_stats (conns: TCP connections the dispatcher opened);\n"
        "lost: texts never accepted; db sent: outbox rows sent; attempts: send attempts "
        "recorded in the outbox;\nkills: dispatcher processes killed with SIGKILL; recon: "
        "texts found at the provider after a kill and not sent again; flag: texts flagged as "
        "possible duplicates"
    )
    for r in reports:
        if r.skipped:
            print(f"{r.engine}: skipped: {r.skipped}")
        serial = r.get(SERIAL)
        if serial:
            print(
                f"{r.engine}: one at a time measured on {serial.texts} texts "
                f"(2,000 at {serial.seconds / max(serial.texts, 1) * 1000:.0f} ms each would "
                f"take {serial.seconds / max(serial.texts, 1) * 2000:.0f} s)"
            )
        for m in r.runs:
            if m.attempts_recorded != m.requests:
                print(
                    f"WARNING: {m.engine} {m.name}: the server answered {m.requests} requests "
                    f"but the outbox recorded {m.attempts_recorded} attempts "
                    f"({m.attempt_outcomes}; {m.possible_duplicates} texts flagged as possible "
                    "duplicates)"
                )
            for line in m.unanswered_attempts[:10]:
                print(f"  {m.engine} {m.name}: {line}")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--engines", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1/postgres"),
        help="a PostgreSQL database to connect to while creating and dropping bench_<random>",
    )
    parser.add_argument("--texts", type=int, default=2000, help="texts in the pool runs")
    parser.add_argument(
        "--serial-texts", type=int, default=300, help="texts in the one-at-a-time run"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="SMS_SEND_CONCURRENCY")
    parser.add_argument("--delay", type=float, default=0.1, help="server seconds per answer")
    parser.add_argument(
        "--fail-every", type=int, default=5, help="the failure run: every n-th request fails"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run at most")
    parser.add_argument(
        "--kills", type=int, default=5, help="SIGKILLs of the dispatcher process in the kill run"
    )
    parser.add_argument(
        "--only-faults", action="store_true", help="only the process runs (with and without kills)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(args.engines) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown engines: {', '.join(sorted(unknown))}")
    for name in ("texts", "serial_texts", "concurrency"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.fail_every < 2:
        parser.error("--fail-every must be at least 2 (1 would fail every request)")
    if args.texts > 9_999_999 or args.serial_texts > 9_999_999:
        parser.error("at most 9,999,999 texts (references and numbers have 7 digits)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))  # the in-process app
    if args.child:
        return child_main()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    machine = f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    log(f"sms bench run {run_id} on {machine}; load average {load}")
    reports: list[EngineReport] = []
    try:
        for engine in args.engines:
            report = EngineReport(engine)
            reports.append(report)
            if engine == "postgresql":
                report.skipped = postgres_unreachable(args.pg_admin_url)
                if report.skipped:
                    log(
                        f"postgresql: skipped, unreachable at {args.pg_admin_url}: {report.skipped}"
                    )
                    continue
            try:
                bench_engine(engine, args, report)
            except Exception as exc:  # recorded in the report; the next engine still runs
                report.error = f"{type(exc).__name__}: {exc}"
                log(f"{engine}: FAILED: {report.error}")
                if not isinstance(exc, BenchError):
                    traceback.print_exc()
    except KeyboardInterrupt:
        log("interrupted; fake servers stopped, databases dropped, temp files removed")
        return 130

    print_report(reports)
    print()
    print(f"run {run_id}; machine: {machine}")
    for passed, line in goal_lines(reports):
        print(f"{'PASS' if passed else 'FAIL'}  {line}")

    run_dir = RESULTS_DIR / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "run_id": run_id,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "args": vars(args),
        "engines": [
            asdict(r)
            | {
                "runs": [
                    asdict(m) | {"texts_per_s": round(m.rate, 1), "lost": m.lost} for m in r.runs
                ]
            }
            for r in reports
        ],
    }
    (run_dir / "sms_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    log(f"summary in {(run_dir / 'sms_summary.json').relative_to(ROOT)}")
    return 2 if any(r.error for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
