"""In-process profile of an API booking against /healthz, on SQLite and PostgreSQL.

One process, no HTTP server: the app's test client books ``--bookings`` distinct
places with SMS consent (as ``lua/book.lua`` does) after a warm-up, and counts
per booking the CPU time of this process, the SQL statements sent and the ORM
flushes; as many ``/healthz`` requests are measured the same way for scale, in
rounds taking turns with the bookings (the median round is reported). ``--cprofile FILE``
writes a cProfile of the measured bookings (read it with ``python -m pstats``).

    .venv/bin/python bench/profile_booking.py --engines sqlite,postgresql

The figures are for code changes side by side, not for capacity: the HTTP
benchmark (``run_bench.py``) measures the service under gunicorn.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from run_bench import HORIZON_DAYS, postgres_database  # noqa: E402

FIRST = ["Maria", "James", "Ana", "Robert", "Sofia", "John", "Lucia", "David"]
LAST = ["Garcia", "Smith", "Lopez", "Johnson", "Martinez", "Brown", "Nguyen", "Hernandez"]


def booking_body(slot_id: int, n: int) -> dict[str, Any]:
    return {
        "slot_id": slot_id,
        "first_name": FIRST[n % len(FIRST)],
        "last_name": LAST[n // len(FIRST) % len(LAST)],
        "phone": f"830-257-{n % 10000:04d}",
        "sms_consent": True,
    }


def profile_engine(database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import event, select

    from scheduler import create_app
    from scheduler.availability.operations import roll_slots_forward
    from scheduler.extensions import db
    from scheduler.models import Slot
    from scheduler.seed import seed_clinic

    app = create_app(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": "profile",
            "PUBLIC_BASE_URL": "https://book.example.test",
            "RATELIMIT_ENABLED": False,
            "BOOKING_HORIZON_DAYS": HORIZON_DAYS,
        }
    )
    with app.app_context():
        db.create_all()
        seed_clinic(app.config["CLINIC_PHONE"])
        db.session.commit()
        roll_slots_forward()
        places = [
            slot_id
            for slot_id, capacity in db.session.execute(select(Slot.id, Slot.capacity)).all()[200:]
            for _ in range(capacity)
        ]
        db.session.remove()
        statements: Counter[str] = Counter()
        flushes = [0]

        def count_statement(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            statements[statement.split(None, 1)[0].upper()] += 1

        def count_flush(session: Any, context: Any) -> None:
            flushes[0] += 1

        event.listen(db.engine, "before_cursor_execute", count_statement)
        event.listen(db.session, "after_flush", count_flush)

    client = app.test_client()
    needed = 2 * args.warmup + args.bookings
    if len(places) < needed:
        raise SystemExit(f"only {len(places)} places for {needed} bookings")
    ids = iter(places)

    calls = request_calls(client, ids)
    for call in calls.values():
        for n in range(args.warmup):
            call(n)
    # Rounds of healthz then bookings, side by side: the machine's load drifts.
    cpu_ms: dict[str, list[float]] = {name: [] for name in calls}
    counts: dict[str, Counter[str]] = {name: Counter() for name in calls}
    flush_counts = dict.fromkeys(calls, 0)
    profiler = cProfile.Profile() if args.cprofile else None
    per_round = max(args.bookings // args.rounds, 1)
    done = args.warmup
    for _ in range(args.rounds):
        for name, call in calls.items():
            statements.clear()
            flushes[0] = 0
            profiling = profiler if name == "book" else None
            cpu_ms[name].append(cpu_ms_per_call(call, done, per_round, profiling))
            counts[name] += statements
            flush_counts[name] += flushes[0]
        done += per_round
    if profiler:
        profiler.dump_stats(f"{args.cprofile}.{make_engine_name(database_url)}")
    result = summary(calls, cpu_ms, counts, flush_counts, per_round * args.rounds)
    with app.app_context():
        db.engine.dispose()
    return result


def request_calls(client: Any, places: Iterator[int]) -> dict[str, Any]:
    """The two requests measured: a health check, and a booking of the next free place."""

    def book(n: int) -> None:
        answer = client.post("/api/v1/appointments", json=booking_body(next(places), n))
        if answer.status_code != 201:
            raise SystemExit(f"booking answered {answer.status_code}: {answer.get_data(True)}")

    def healthz(n: int) -> None:
        if client.get("/healthz").status_code != 200:
            raise SystemExit("healthz failed")

    return {"healthz": healthz, "book": book}


def cpu_ms_per_call(call: Any, first: int, count: int, profiler: cProfile.Profile | None) -> float:
    """CPU milliseconds per call over ``count`` calls, under ``profiler`` if given."""
    if profiler:
        profiler.enable()
    started = time.process_time()
    for n in range(count):
        call(first + n)
    elapsed = time.process_time() - started
    if profiler:
        profiler.disable()
    return elapsed * 1000 / count


def summary(
    calls: dict[str, Any],
    cpu_ms: dict[str, list[float]],
    counts: dict[str, Counter[str]],
    flush_counts: dict[str, int],
    total: int,
) -> dict[str, Any]:
    """Per call: the median CPU per request over the rounds, statements and flushes each."""
    return {
        name: {
            "cpu_ms": round(statistics.median(cpu_ms[name]), 3),
            "cpu_ms_rounds": [round(v, 3) for v in cpu_ms[name]],
            "statements": round(sum(counts[name].values()) / total, 2),
            "by_kind": {k: round(v / total, 2) for k, v in sorted(counts[name].items())},
            "flushes": round(flush_counts[name] / total, 2),
        }
        for name in calls
    }


def make_engine_name(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--bookings", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="healthz and bookings taking turns")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1/postgres")
    parser.add_argument("--cprofile", help="write the bookings' cProfile to FILE.<engine>")
    args = parser.parse_args()
    results = {}
    for engine in args.engines.split(","):
        with ExitStack() as stack:
            if engine == "sqlite":
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="profile-"))
                url = f"sqlite:///{tmp}/profile.sqlite3"
            else:
                url = stack.enter_context(postgres_database(args.pg_admin_url))
            results[engine] = profile_engine(url, args)
        r = results[engine]
        print(
            f"{engine}: booking {r['book']['cpu_ms']:.2f} ms CPU, "
            f"{r['book']['statements']} statements {r['book']['by_kind']}, "
            f"{r['book']['flushes']} flushes; healthz {r['healthz']['cpu_ms']:.2f} ms CPU; "
            f"ratio {r['book']['cpu_ms'] / r['healthz']['cpu_ms']:.1f}"
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
