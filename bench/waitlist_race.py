"""Waitlist offer-to-accept race: many patients tap "Take this time" on one freed place.

For each engine (a SQLite file in a temp dir, or a PostgreSQL database created
here and dropped at the end), ``--rounds`` rounds: a fresh place is booked, ``--racers``
patients join its location's waitlist, the booking is cancelled (the lifecycle
offers the place to all of them: ``WAITLIST_BATCH`` = racers), and every patient
accepts at once, each in a thread of its own with its own session and connection
(released together by a barrier). A round passes when exactly one accept books
the place, every other one is told "taken", the slot counts one booking, and no
accept raised. Reported: the rounds that passed, and the time each accept took
(winner and losers apart), median and 95th percentile.

Run from the repository root::

    .venv/bin/python bench/waitlist_race.py [--rounds 20] [--racers 10]

Exit status 0 when every round passed, 1 otherwise, 2 when the benchmark could not
run. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduler import create_app  # noqa: E402
from scheduler.appointments.lifecycle import PATIENT_WEB  # noqa: E402
from scheduler.extensions import db  # noqa: E402
from scheduler.models import Slot, utcnow  # noqa: E402
from scheduler.waitlist.offers import accept_offer  # noqa: E402
from tests.conftest import create_pg_database, drop_pg_database, pg_unreachable_reason  # noqa: E402
from tests.factories import cancel, make_appointment, make_location, make_slot  # noqa: E402
from tests.waitlist.conftest import join, offers_of  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def one_round(app: Any, racers: int) -> tuple[bool, list[float], list[float]]:
    slot = make_slot(make_location(), days_ahead=3, capacity=1)
    appt = make_appointment(slot)
    for _ in range(racers):
        join(slot.location)
    cancel(appt)
    offer_ids = [offer.id for offer in offers_of(slot.id)]
    barrier = threading.Barrier(len(offer_ids))
    results: list[tuple[str, float]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    now = utcnow()

    def take(offer_id: int) -> None:
        with app.app_context():
            barrier.wait()
            started = time.perf_counter()
            try:
                outcome = accept_offer(offer_id, PATIENT_WEB, now).outcome
            except BaseException as error:
                errors.append(error)
                return
            finally:
                db.session.remove()
            with lock:
                results.append((outcome, time.perf_counter() - started))

    threads = [threading.Thread(target=take, args=(offer_id,)) for offer_id in offer_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    outcomes = Counter(outcome for outcome, _ in results)
    db.session.expire_all()
    booked = db.session.get(Slot, slot.id).booked_count
    passed = (
        not errors
        and len(offer_ids) == racers
        and outcomes == {"accepted": 1, "taken": racers - 1}
        and booked == 1
    )
    won = [seconds for outcome, seconds in results if outcome == "accepted"]
    lost = [seconds for outcome, seconds in results if outcome != "accepted"]
    return passed, won, lost


def run_engine(name: str, url: str, rounds: int, racers: int) -> bool:
    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench",
            "PUBLIC_BASE_URL": "https://book.example.test",
            "WAITLIST_BATCH": racers,
            "DATABASE_POOL_SIZE": racers + 2,
            "SMS_MAX_PER_NUMBER_PER_DAY": 1000,
        }
    )
    with app.app_context():
        db.create_all()
        passed = 0
        won: list[float] = []
        lost: list[float] = []
        for _ in range(rounds):
            ok, round_won, round_lost = one_round(app, racers)
            passed += ok
            won += round_won
            lost += round_lost
        db.session.remove()
        db.engine.dispose()
    ms = 1000
    print(
        f"{name}: {passed}/{rounds} rounds with exactly 1 booking of {racers} racers; "
        f"winner {statistics.median(won) * ms:.1f} ms median, "
        f"{percentile(won, 0.95) * ms:.1f} ms p95; "
        f"'taken' {statistics.median(lost) * ms:.1f} ms median, "
        f"{percentile(lost, 0.95) * ms:.1f} ms p95 ({len(lost)} answers)"
    )
    return passed == rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--racers", type=int, default=10)
    args = parser.parse_args()
    all_passed = True
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.sqlite3"
        all_passed &= run_engine("sqlite", url, args.rounds, args.racers)
    reason = pg_unreachable_reason()
    if reason:
        print(f"postgresql: skipped ({reason})")
    else:
        url = create_pg_database()
        try:
            all_passed &= run_engine("postgresql", url, args.rounds, args.racers)
        finally:
            drop_pg_database(url)
    print("PASS" if all_passed else "FAIL")
    return 0 if all_passed else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
