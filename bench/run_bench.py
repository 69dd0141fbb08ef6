"""HTTP benchmark of the scheduler on SQLite and PostgreSQL, side by side.

For each engine: a fresh database (SQLite file in a temp dir, or a PostgreSQL
database ``bench_<random>`` created here and dropped at the end), migrations,
seed with a 365-day horizon, 5,000 appointments inserted in bulk, then the app
under gunicorn measured with wrk: ``/healthz``, a 30-day slots listing and
bookings (every request for a different free place). Afterwards the database is
checked: no slot over capacity, and every ``booked_count`` equal to the number
of appointments holding a place in it.

Besides wrk's figures, each run records CPU time per request of gunicorn (and
of PostgreSQL) read from /proc, and how much CPU other processes on the machine
took meanwhile: throughput on a shared 2-core machine means little without it.

Run from the repository root::

    .venv/bin/python bench/run_bench.py

Exit status: 0 when every goal is met, 1 when a goal is missed, 2 when the
benchmark itself could not run. Raw wrk output, logs and a JSON summary go to
``bench/results/<timestamp>/`` (ignored by git). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
LUA_DIR = ROOT / "bench" / "lua"
RESULTS_DIR = ROOT / "bench" / "results"
HORIZON_DAYS = 365
SLOTS_TZ = ZoneInfo("America/Chicago")  # the seeded locations' time zone
API_MAX_RANGE_DAYS = 92  # scheduler.api.views.MAX_RANGE_DAYS
COMMAND_TIMEOUT_S = 300
WRK_TIMEOUT = "5s"  # a request slower than this counts as a wrk timeout error
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BUSY_MACHINE_CORES = 0.25  # other processes' CPU during a run above which it is flagged

# The paced booking run: each of the connections waits this long before each
# request, an open load of at most connections * 1000 / PACED_DELAY_MS bookings/s.
PACED_DELAY_MS = 200
PACED_PLACES = 3000

# Goals checked at the end.
SLOTS_MIN_SHARE_OF_HEALTHZ = 1 / 2
BOOKING_P95_MAX_MS = 50.0
BOOKING_MAX_CPU_OF_HEALTHZ = 4.0  # app CPU per booking, at most this many healthz requests' worth


class BenchError(Exception):
    """The benchmark could not run (as opposed to a goal being missed)."""


# --------------------------------------------------------------------------- results


@dataclass
class Measurement:
    engine: str
    endpoint: str
    serving: str  # how gunicorn served it: "4 sync" workers, or "2x8 threads"
    url: str
    connections: int
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    non_2xx: int
    app_cpu_ms: float = 0.0  # gunicorn master and workers, per request
    db_cpu_ms: float = 0.0  # PostgreSQL server processes, per request (SQLite: in the app)
    wrk_cpu_ms: float = 0.0
    other_cores: float = 0.0  # CPU of every other process meanwhile, in cores

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx


@dataclass
class DbCheck:
    slots_over_capacity: int
    slots_count_mismatch: int
    appointments_before: int
    appointments_after: int
    booked_by_wrk: int  # 2xx answers wrk saw in the measured booking run
    connections: int

    @property
    def created(self) -> int:
        return self.appointments_after - self.appointments_before

    @property
    def ok(self) -> bool:
        # Requests in flight when wrk stops are not counted by wrk but may still
        # commit: the database may hold up to one booking more per connection.
        return (
            self.slots_over_capacity == 0
            and self.slots_count_mismatch == 0
            and self.booked_by_wrk <= self.created <= self.booked_by_wrk + self.connections
        )


@dataclass
class EngineReport:
    engine: str
    setup_s: dict[str, float] = field(default_factory=dict)
    slots_in_response: int = 0
    slots_response_bytes: int = 0
    open_places: int = 0
    measurements: list[Measurement] = field(default_factory=list)
    db_check: DbCheck | None = None
    error: str | None = None

    def get(self, endpoint: str, serving: str | None = None) -> Measurement | None:
        """The first measurement of this endpoint (by default in the first serving mode)."""
        serving = serving or (self.measurements[0].serving if self.measurements else "")
        return next(
            (
                m
                for m in self.measurements
                if m.endpoint.startswith(endpoint) and m.serving == serving
            ),
            None,
        )

    @property
    def servings(self) -> list[str]:
        return list(dict.fromkeys(m.serving for m in self.measurements))


# --------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_logged(cmd: list[str], env: dict[str, str], log_path: Path) -> None:
    """Run a setup command from the repository root; its output goes to log_path."""
    with log_path.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        result = subprocess.run(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    if result.returncode != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-20:])
        raise BenchError(f"{' '.join(cmd[2:])} failed ({result.returncode}):\n{tail}")


def http_get_json(url: str, timeout: float = 10.0) -> tuple[Any, int]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = response.read()
    return json.loads(body), len(body)


def app_env(database_url: str, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": secrets.token_urlsafe(32),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "RATELIMIT_ENABLED": "false",
            "BOOKING_HORIZON_DAYS": str(HORIZON_DAYS),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def app_config(env: dict[str, str]) -> dict[str, Any]:
    """The same settings as the gunicorn workers get, for the in-process app."""
    return {
        "DATABASE_URL": env["DATABASE_URL"],
        "SECRET_KEY": env["SECRET_KEY"],
        "PUBLIC_BASE_URL": env["PUBLIC_BASE_URL"],
        "RATELIMIT_ENABLED": False,
        "BOOKING_HORIZON_DAYS": HORIZON_DAYS,
    }


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Unwind like Ctrl-C does, so child processes are stopped and databases dropped."""
    log(f"stopped by signal {signum}; cleaning up")
    raise SystemExit(2)


# --------------------------------------------------------------------------- CPU accounting


def busy_ticks() -> int:
    """CPU ticks the whole machine spent not idle since boot (all cores)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return user + nice + system + irq + softirq + steal


def group_ticks(pgid: int, with_postgres: bool) -> tuple[int, int]:
    """CPU ticks of the processes in process group pgid, and of the PostgreSQL server."""
    ours = postgres = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        fields = rest.split()  # fields[0] is field 3 of proc(5): state
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        if int(fields[2]) == pgid:
            ours += ticks
        elif with_postgres and name.startswith("postgres"):
            postgres += ticks
    return ours, postgres


@dataclass
class CpuSnapshot:
    at: float
    busy: int
    app: int
    db: int
    children_s: float


def cpu_snapshot(pgid: int, with_postgres: bool) -> CpuSnapshot:
    app, db = group_ticks(pgid, with_postgres)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has been waited for
    return CpuSnapshot(time.monotonic(), busy_ticks(), app, db, usage.ru_utime + usage.ru_stime)


# --------------------------------------------------------------------------- processes


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped (even with connections open) on exit."""
    from sqlalchemy import create_engine, make_url, text

    name = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        log(f"postgresql: created database {name}")
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            log(f"postgresql: dropped database {name}")
    finally:
        admin.dispose()


@contextmanager
def gunicorn(
    env: dict[str, str], port: int, workers: int, log_path: Path, threads: int = 1
) -> Iterator[int]:
    """gunicorn serving wsgi:app on 127.0.0.1:port until the block ends; yields its pgid.

    ``threads`` above 1 runs gthread workers, the way ``bin/run`` serves the app.
    """
    cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}"]
    if threads > 1:
        cmd += ["--threads", str(threads)]
    with log_path.open("a") as out:
        proc = subprocess.Popen(
            [*cmd, "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole below
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", proc, log_path)
        yield proc.pid
    finally:
        stop_process_group(proc)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"gunicorn exited with {proc.returncode}; see {log_path}")
        try:
            body, _ = http_get_json(url, timeout=2)
            if body.get("status") == "ok":
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise BenchError(f"{url} not healthy within 60 s; see {log_path}")


def stop_process_group(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the process group we started (graceful), SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


# --------------------------------------------------------------------------- data


def fill_appointments(config: dict[str, Any], count: int, rng: random.Random) -> dict[str, int]:
    """Insert ``count`` appointments (with patients and events) in bulk, spread over all slots.

    Places are sampled without replacement from every slot's free places, so
    ``booked_count`` stays within capacity, and it is set from the very
    appointments inserted. About 7% are cancelled: they hold no place.
    """
    from sqlalchemy import func, insert, select, update

    from scheduler import create_app
    from scheduler.appointments.operations import REFERENCE_ALPHABET, REFERENCE_LENGTH
    from scheduler.extensions import db
    from scheduler.models import (
        HOLDS_SLOT,
        Appointment,
        AppointmentEvent,
        AppointmentStatus,
        Location,
        Patient,
        Slot,
        utcnow,
    )

    app = create_app(config)
    with app.app_context():
        now = utcnow()
        codes = dict(db.session.execute(select(Location.id, Location.code)).all())
        slot_rows = db.session.execute(
            select(Slot.id, Slot.location_id, Slot.capacity - Slot.booked_count).where(
                Slot.is_blocked.is_(False)
            )
        ).all()
        if not slot_rows:
            raise BenchError("the seed made no slots")
        places = [(sid, loc) for sid, loc, free in slot_rows for _ in range(free)]
        statuses = rng.choices(
            [AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED, AppointmentStatus.CANCELLED],
            weights=[75, 18, 7],
            k=count,
        )
        holding = sum(1 for s in statuses if s in HOLDS_SLOT)
        if holding > len(places):
            raise BenchError(f"{holding} appointments do not fit in {len(places)} free places")
        taken = iter(rng.sample(places, holding))

        first = ["Maria", "James", "Ana", "Robert", "Sofia", "John", "Lucia", "David", "Elena"]
        last = ["Garcia", "Smith", "Lopez", "Johnson", "Martinez", "Brown", "Nguyen", "Reyes"]
        patient_ids = db.session.scalars(
            insert(Patient).returning(Patient.id),
            [
                {
                    "first_name": rng.choice(first),
                    "last_name": rng.choice(last),
                    "phone": f"+1830{rng.randrange(2_000_000, 9_999_999)}",
                    "language": "en",
                    "sms_consent": False,
                    "created_at": now,
                }
                for _ in range(count)
            ],
        ).all()

        references: set[str] = set()
        appointments = []
        booked_count: dict[int, int] = {}
        for status, patient_id in zip(statuses, patient_ids, strict=True):
            if status in HOLDS_SLOT:
                slot_id, location_id = next(taken)
                booked_count[slot_id] = booked_count.get(slot_id, 0) + 1
            else:
                slot_id, location_id = rng.choice(places)
            reference = ""
            while not reference or reference in references:
                body = "".join(rng.choices(REFERENCE_ALPHABET, k=REFERENCE_LENGTH))
                reference = f"{codes[location_id]}-{body}"
            references.add(reference)
            appointments.append(
                {
                    "reference": reference,
                    "slot_id": slot_id,
                    "patient_id": patient_id,
                    "status": str(status),
                    "source": "staff",
                    "manage_nonce": secrets.token_urlsafe(12),
                    "created_at": now,
                    "updated_at": now,
                    "version": 1,
                }
            )
        inserted = db.session.execute(
            insert(Appointment).returning(Appointment.id, Appointment.status), appointments
        ).all()
        db.session.execute(
            insert(AppointmentEvent),
            [
                {"appointment_id": appt_id, "to_status": status, "actor": "staff", "at": now}
                for appt_id, status in inserted
            ],
        )
        db.session.execute(
            update(Slot),
            [{"id": sid, "booked_count": n} for sid, n in booked_count.items()],
        )
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            # Fresh statistics, as autovacuum would gather shortly after such a load.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
        total_slots = db.session.scalar(select(func.count()).select_from(Slot)) or 0
        db.engine.dispose()
    return {"slots": total_slots, "appointments": len(inserted), "holding_place": holding}


def check_database(config: dict[str, Any]) -> tuple[int, int, int]:
    """(slots over capacity, slots whose booked_count is not their holding count, appointments)."""
    from sqlalchemy import func, select

    from scheduler import create_app
    from scheduler.extensions import db
    from scheduler.models import HOLDS_SLOT, Appointment, Slot

    app = create_app(config)
    with app.app_context():
        over = db.session.scalar(
            select(func.count()).select_from(Slot).where(Slot.booked_count > Slot.capacity)
        )
        holding = (
            select(func.count())
            .where(Appointment.slot_id == Slot.id, Appointment.status.in_(list(HOLDS_SLOT)))
            .correlate(Slot)
            .scalar_subquery()
        )
        mismatch = db.session.scalar(
            select(func.count()).select_from(Slot).where(Slot.booked_count != holding)
        )
        appointments = db.session.scalar(select(func.count()).select_from(Appointment))
        db.session.rollback()
        db.engine.dispose()
    return int(over or 0), int(mismatch or 0), int(appointments or 0)


def settled_check(config: dict[str, Any]) -> tuple[int, int, int]:
    """check_database once requests still in flight have committed: the count stays put."""
    result = check_database(config)
    for _ in range(20):
        time.sleep(0.5)
        again = check_database(config)
        if again[2] == result[2]:
            return again
        result = again
    return result


def open_places(base_url: str, rng: random.Random) -> list[int]:
    """Every bookable place over the horizon, as the API lists it, shuffled.

    A slot with two places left appears twice.
    """
    locations, _ = http_get_json(f"{base_url}/api/v1/locations")
    today = datetime.now(SLOTS_TZ).date()
    places: list[int] = []
    for location in locations:
        first = today
        while first <= today + timedelta(days=HORIZON_DAYS):
            last = first + timedelta(days=API_MAX_RANGE_DAYS - 1)
            url = f"{base_url}/api/v1/locations/{location['slug']}/slots?from={first}&to={last}"
            body, _ = http_get_json(url, timeout=30)
            places += [s["id"] for s in body["slots"] for _ in range(s["remaining"])]
            first = last + timedelta(days=1)
    rng.shuffle(places)
    return places


def write_ids(path: Path, ids: list[int]) -> Path:
    path.write_text("".join(f"{i}\n" for i in ids))
    return path


# --------------------------------------------------------------------------- wrk

BENCH_LINE = re.compile(r"^BENCH_JSON (\{.*\})\s*$", re.MULTILINE)
NON_2XX_LINE = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")


@dataclass
class Target:
    """One wrk run: what to hit, how hard, and for how long."""

    endpoint: str
    url: str
    script: str  # in bench/lua/
    threads: int
    connections: int
    duration_s: int
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Server:
    engine: str
    pgid: int  # gunicorn's process group
    serving: str  # "4 sync", "2x8 threads"

    @property
    def with_postgres(self) -> bool:
        return self.engine == "postgresql"


def run_wrk(server: Server, target: Target, raw_path: Path) -> Measurement:
    cmd = [
        shutil.which("wrk") or "/usr/bin/wrk",
        f"-t{target.threads}",
        f"-c{target.connections}",
        f"-d{target.duration_s}s",
        f"--timeout={WRK_TIMEOUT}",
        "--latency",
        "-s",
        str(LUA_DIR / target.script),
        target.url,
    ]
    env = dict(os.environ, BENCH_THREADS=str(target.threads), **target.env)
    before = cpu_snapshot(server.pgid, server.with_postgres)
    result = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=target.duration_s + 60, check=False
    )
    after = cpu_snapshot(server.pgid, server.with_postgres)
    raw_path.write_text(f"$ {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    match = BENCH_LINE.search(result.stdout)
    if result.returncode != 0 or match is None:
        raise BenchError(f"wrk failed ({result.returncode}) for {target.url}:\n{result.stderr}")
    data = json.loads(match.group(1))
    errors = data["errors"]
    text_non2xx = NON_2XX_LINE.search(result.stdout)
    # non2xx is -1 when the script kept no count of its own (plain GETs); then
    # wrk's "status" errors (codes above 399) are what it knows.
    non_2xx = max(data["non2xx"], errors["status"], int(text_non2xx[1]) if text_non2xx else 0)
    latency = data["latency_us"]
    duration_s = data["duration_us"] / 1e6
    requests = max(data["requests"], 1)

    app_s = (after.app - before.app) / CLOCK_TICKS
    db_s = (after.db - before.db) / CLOCK_TICKS
    wrk_s = after.children_s - before.children_s
    busy_s = (after.busy - before.busy) / CLOCK_TICKS
    other_s = max(busy_s - app_s - db_s - wrk_s, 0.0)
    return Measurement(
        engine=server.engine,
        endpoint=target.endpoint,
        serving=server.serving,
        url=target.url,
        connections=target.connections,
        requests=data["requests"],
        duration_s=round(duration_s, 3),
        rps=round(data["requests"] / duration_s, 1) if duration_s else 0.0,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p95_ms=latency["p95"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        non_2xx=non_2xx,
        app_cpu_ms=round(app_s * 1000 / requests, 2),
        db_cpu_ms=round(db_s * 1000 / requests, 2),
        wrk_cpu_ms=round(wrk_s * 1000 / requests, 2),
        other_cores=round(other_s / max(after.at - before.at, 1e-9), 2),
    )


# --------------------------------------------------------------------------- one engine


def prepare_database(
    engine: str,
    env: dict[str, str],
    args: argparse.Namespace,
    report: EngineReport,
    run_dir: Path,
    rng: random.Random,
) -> None:
    """Migrations, seed (a year of slots) and the bulk appointments."""
    setup_log = run_dir / f"{engine}-setup.log"
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    for step, cmd in (("migrate", [*flask, "db", "upgrade"]), ("seed", [*flask, "seed"])):
        started = time.monotonic()
        run_logged(cmd, env, setup_log)
        report.setup_s[step] = round(time.monotonic() - started, 2)
    started = time.monotonic()
    filled = fill_appointments(app_config(env), args.appointments, rng)
    report.setup_s["fill"] = round(time.monotonic() - started, 2)
    log(
        f"{engine}: {filled['slots']} slots, {filled['appointments']} appointments "
        f"({filled['holding_place']} holding a place); setup {report.setup_s}"
    )


def serving_label(workers: int, threads: int) -> str:
    return f"{workers}x{threads} threads" if threads > 1 else f"{workers} sync"


def measure(
    server: Server,
    targets: list[Target],
    report: EngineReport,
    run_dir: Path,
    args: argparse.Namespace,
    on_booking: Any = None,
) -> None:
    """Each target after its warm-up (none for ``book``: the paced run warmed it up)."""
    for target in targets:
        if args.warmup and target.endpoint != "book":
            warm_env = {"BENCH_SLOT_IDS": target.env["BENCH_WARM_IDS"]} if target.env else {}
            warm_target = replace(target, duration_s=args.warmup, env=warm_env)
            run_wrk(server, warm_target, run_dir / f"{server.engine}-warmup.txt")
        if target.script == "book.lua" and on_booking is not None:
            on_booking()
        name = f"{target.endpoint.split()[0]}-{server.serving.replace(' ', '-')}"
        measured = run_wrk(server, target, run_dir / f"{server.engine}-{name}.txt")
        report.measurements.append(measured)
        log(
            f"{server.engine} {target.endpoint} ({server.serving}): {measured.rps:.1f} req/s, "
            f"p50 {measured.p50_ms:.2f} ms, p95 {measured.p95_ms:.2f} ms, "
            f"errors {measured.errors}, app CPU {measured.app_cpu_ms:.2f} ms/req, "
            f"other load {measured.other_cores:.2f} cores"
        )


def bench_engine(
    engine: str, args: argparse.Namespace, report: EngineReport, run_dir: Path
) -> None:
    """The sync workers: healthz, slots and bookings; then the threaded workers: healthz, slots."""
    rng = random.Random(args.seed)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{engine}-")))
        if engine == "sqlite":
            database_url = f"sqlite:///{tmp / 'bench.sqlite3'}"
        else:
            database_url = stack.enter_context(postgres_database(args.pg_admin_url))
        port = free_port()
        env = app_env(database_url, port)
        config = app_config(env)
        prepare_database(engine, env, args, report, run_dir, rng)
        base = f"http://127.0.0.1:{port}"
        first = datetime.now(SLOTS_TZ).date()
        last = first + timedelta(days=args.range_days - 1)
        slots_url = f"{base}/api/v1/locations/{args.location}/slots?from={first}&to={last}"
        t, c, d = args.threads, args.connections, args.duration
        get_targets = [
            Target("healthz", f"{base}/healthz", "get.lua", t, c, d),
            Target(f"slots {args.range_days}d", slots_url, "get.lua", t, c, d),
        ]

        gunicorn_log = run_dir / f"{engine}-gunicorn.log"
        with gunicorn(env, port, args.workers, gunicorn_log) as pgid:
            server = Server(engine, pgid, serving_label(args.workers, 1))
            log(f"{engine}: gunicorn -w {args.workers} up on {base}")
            body, size = http_get_json(slots_url)
            report.slots_in_response, report.slots_response_bytes = len(body["slots"]), size

            places = open_places(base, rng)
            report.open_places = len(places)
            # Up to 1,000 places for the booking warm-up, the rest for the measured run.
            # A run that used them all would send slot id 0: 4xx answers, counted as errors.
            warm = min(1000, len(places) // 10)
            paced_count = min(PACED_PLACES, len(places) // 10)
            warm_ids = str(write_ids(tmp / "warm_ids.txt", places[:warm]))
            paced_ids = str(write_ids(tmp / "paced_ids.txt", places[warm : warm + paced_count]))
            book_ids = str(write_ids(tmp / "book_ids.txt", places[warm + paced_count :]))
            booking = {"url": f"{base}/api/v1/appointments", "script": "book.lua"}
            paced_env = {"BENCH_SLOT_IDS": paced_ids, "BENCH_DELAY_MS": str(PACED_DELAY_MS)}
            targets = [
                *get_targets,
                Target(
                    endpoint="paced book",
                    threads=t,
                    connections=c,
                    duration_s=args.booking_duration,
                    env={**paced_env, "BENCH_WARM_IDS": warm_ids},
                    **booking,
                ),
                Target(
                    endpoint="book",
                    threads=t,
                    connections=c,
                    duration_s=args.booking_duration,
                    env={"BENCH_SLOT_IDS": book_ids},
                    **booking,
                ),
            ]
            counts: list[int] = []
            measure(
                server,
                targets,
                report,
                run_dir,
                args,
                on_booking=lambda: counts.append(settled_check(config)[2]),
            )
            over, mismatch, appointments_after = settled_check(config)
            book = report.get("book")
            assert book is not None
            report.db_check = DbCheck(
                slots_over_capacity=over,
                slots_count_mismatch=mismatch,
                appointments_before=counts[-1],
                appointments_after=appointments_after,
                booked_by_wrk=book.requests - book.non_2xx,
                connections=book.connections,
            )

        if args.threaded_workers:
            workers, threads = args.threaded_workers, args.threads_per_worker
            with gunicorn(env, port, workers, gunicorn_log, threads=threads) as pgid:
                server = Server(engine, pgid, serving_label(workers, threads))
                log(f"{engine}: gunicorn -w {workers} --threads {threads} up on {base}")
                measure(server, get_targets, report, run_dir, args)


# --------------------------------------------------------------------------- report


def engine_goal_lines(r: EngineReport) -> list[tuple[bool, str]]:
    lines: list[tuple[bool, str]] = []
    for serving in r.servings:
        health, slots = r.get("healthz", serving), r.get("slots", serving)
        if health and slots:
            ratio = slots.rps / health.rps if health.rps else 0.0
            lines.append(
                (
                    ratio >= SLOTS_MIN_SHARE_OF_HEALTHZ,
                    f"{r.engine}: slots/healthz throughput {ratio:.2f}, {serving} "
                    f"(goal >= {SLOTS_MIN_SHARE_OF_HEALTHZ:.2f})",
                )
            )
    health, book, paced = r.get("healthz"), r.get("book"), r.get("paced book")
    if health and book:
        ratio = book.app_cpu_ms / health.app_cpu_ms if health.app_cpu_ms else float("inf")
        lines.append(
            (
                ratio <= BOOKING_MAX_CPU_OF_HEALTHZ,
                f"{r.engine}: app CPU per booking {book.app_cpu_ms:.2f} ms = {ratio:.1f} x "
                f"healthz's {health.app_cpu_ms:.2f} ms "
                f"(goal <= {BOOKING_MAX_CPU_OF_HEALTHZ:.0f} x)",
            )
        )
    if book:
        lines.append(
            (
                book.p95_ms < BOOKING_P95_MAX_MS,
                f"{r.engine}: booking p95 {book.p95_ms:.1f} ms at {book.connections} "
                f"closed-loop connections (goal < {BOOKING_P95_MAX_MS:.0f} ms)",
            )
        )
    if paced:
        lines.append(
            (
                paced.p95_ms < BOOKING_P95_MAX_MS,
                f"{r.engine}: booking p95 {paced.p95_ms:.1f} ms at {paced.connections} "
                f"connections paced to {paced.rps:.0f} bookings/s "
                f"(goal < {BOOKING_P95_MAX_MS:.0f} ms)",
            )
        )
    errors = sum(m.errors for m in r.measurements)
    detail = ", ".join(f"{m.endpoint} ({m.serving}) {m.errors}" for m in r.measurements)
    lines.append((errors == 0, f"{r.engine}: errors {errors} ({detail}) (goal 0)"))
    if r.db_check:
        c = r.db_check
        lines.append(
            (
                c.ok,
                f"{r.engine}: database after booking: {c.slots_over_capacity} slots over "
                f"capacity, {c.slots_count_mismatch} slots with booked_count != holding "
                f"appointments; {c.created} appointments created for {c.booked_by_wrk} "
                f"2xx seen by wrk (goal 0, 0, and 2xx <= created <= 2xx + connections)",
            )
        )
    return lines


def goal_lines(reports: list[EngineReport]) -> list[tuple[bool, str]]:
    lines: list[tuple[bool, str]] = []
    for r in reports:
        if r.error:
            lines.append((False, f"{r.engine}: benchmark did not complete: {r.error}"))
        else:
            lines += engine_goal_lines(r)
    return lines


def print_report(reports: list[EngineReport]) -> bool:
    columns = [
        ("engine", 11, "<"),
        ("endpoint", 11, "<"),
        ("serving", 14, "<"),
        ("requests", 9, ">"),
        ("req/s", 8, ">"),
        ("p50 ms", 8, ">"),
        ("p95 ms", 8, ">"),
        ("p99 ms", 8, ">"),
        ("errors", 7, ">"),
        ("app cpu", 8, ">"),
        ("db cpu", 7, ">"),
        ("other", 6, ">"),
    ]
    header = "".join(f"{name:{align}{width}}" for name, width, align in columns)
    print()
    print(header)
    print("-" * len(header))
    busy = False
    for r in reports:
        for m in r.measurements:
            busy |= m.other_cores > BUSY_MACHINE_CORES
            print(
                f"{m.engine:<11}{m.endpoint:<11}{m.serving:<14}{m.requests:>9}{m.rps:>8.1f}"
                f"{m.p50_ms:>8.2f}{m.p95_ms:>8.2f}{m.p99_ms:>8.2f}{m.errors:>7}"
                f"{m.app_cpu_ms:>8.2f}{m.db_cpu_ms:>7.2f}{m.other_cores:>6.2f}"
            )
    print(
        "app cpu / db cpu: CPU ms per request of gunicorn / of PostgreSQL; "
        "other: cores used meanwhile by other processes"
    )
    if busy:
        print(
            f"WARNING: other processes used over {BUSY_MACHINE_CORES} cores during some runs; "
            "throughput and latency there are understated."
        )
    print()
    for r in reports:
        for serving in r.servings:
            health, slots = r.get("healthz", serving), r.get("slots", serving)
            if health and slots and health.rps:
                print(
                    f"{r.engine} ({serving}): slots/healthz throughput = "
                    f"{slots.rps / health.rps:.2f}, CPU per request "
                    f"{slots.app_cpu_ms + slots.db_cpu_ms:.2f} ms vs "
                    f"{health.app_cpu_ms + health.db_cpu_ms:.2f} ms "
                    f"({r.slots_in_response} slots, {r.slots_response_bytes} bytes per response)"
                )
    print()
    ok = True
    for passed, line in goal_lines(reports):
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'}  {line}")
    return ok


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--engines", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1/postgres"),
        help="a PostgreSQL database to connect to while creating and dropping bench_<random>",
    )
    parser.add_argument("--appointments", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument(
        "--threaded-workers",
        type=int,
        default=2,
        help="gunicorn workers of the second, threaded configuration (0: skip it)",
    )
    parser.add_argument(
        "--threads-per-worker",
        type=int,
        default=8,
        help="threads per worker in the threaded configuration (bin/run's WEB_THREADS)",
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=20, help="wrk connections")
    parser.add_argument("--duration", type=int, default=10, help="seconds per GET run")
    parser.add_argument("--booking-duration", type=int, default=10, help="seconds of booking")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per endpoint")
    parser.add_argument("--range-days", type=int, default=30, help="days in the slots request")
    parser.add_argument("--location", default="boerne")
    parser.add_argument("--seed", type=int, default=20261123, help="random seed for the data")
    args = parser.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(args.engines) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown engines: {', '.join(sorted(unknown))}")
    if not 1 <= args.range_days <= API_MAX_RANGE_DAYS:
        parser.error(f"--range-days must be 1 to {API_MAX_RANGE_DAYS}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.path.insert(0, str(ROOT))  # the in-process app used for data and checks
    started = datetime.now(UTC)
    run_dir = RESULTS_DIR / started.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    log(f"results and logs in {run_dir.relative_to(ROOT)}")

    reports = []
    for engine in args.engines:
        report = EngineReport(engine)
        reports.append(report)
        try:
            bench_engine(engine, args, report, run_dir)
        except Exception as exc:  # recorded in the report; the next engine still runs
            report.error = f"{type(exc).__name__}: {exc}"
            log(f"{engine}: FAILED: {report.error}")
            if not isinstance(exc, BenchError):
                traceback.print_exc()

    ok = print_report(reports)
    summary = {
        "date": started.date().isoformat(),
        "cpus": os.cpu_count(),
        "args": vars(args),
        "engines": [
            asdict(r) | {"measurements": [asdict(m) | {"errors": m.errors} for m in r.measurements]}
            for r in reports
        ],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    log(f"summary in {(run_dir / 'summary.json').relative_to(ROOT)}")
    if any(r.error for r in reports):
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
