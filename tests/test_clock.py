"""The suite's clock: the `clock` fixture and marker, `--clock`, and no clock in the database."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.models import utcnow
from tests.conftest import CLOCK_START, Clock, real_utcnow, session_instant

ROOT = Path(__file__).resolve().parents[1]
# Ways SQL reads the database server's clock. The server's clock is not the app's (tests move
# the app's; servers drift): every time the app compares comes from utcnow() in Python.
DATABASE_CLOCK = re.compile(
    r"\b(?:CURRENT_TIMESTAMP|CURRENT_DATE|CURRENT_TIME|LOCALTIMESTAMP|LOCALTIME|SYSDATE"
    r"|clock_timestamp|statement_timestamp|transaction_timestamp|timeofday|julianday|unixepoch)\b"
    r"|\bnow\(\s*\)|func\.now\b|func\.current_\w+|'now'",
    re.IGNORECASE,
)


def test_the_app_never_takes_the_time_from_the_database() -> None:
    sources = [
        path
        for folder in ("scheduler", "migrations")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in (".py", ".sql", ".mako")
    ]
    assert len(sources) > 30 and any(p.parent.name == "versions" for p in sources)
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if DATABASE_CLOCK.search(line)
    ]
    assert found == []


def test_the_pattern_finds_the_usual_spellings() -> None:
    for spelling in (
        "server_default=sa.func.now()",
        "default=func.current_timestamp()",
        "WHERE due_at <= now()",
        "SELECT CURRENT_TIMESTAMP",
        "datetime('now')",
    ):
        assert DATABASE_CLOCK.search(spelling), spelling
    assert not DATABASE_CLOCK.search("now = now or utcnow()")
    assert not DATABASE_CLOCK.search("datetime.now(UTC)")


@pytest.mark.clock
def test_the_clock_starts_at_a_known_instant_and_ticks(clock: Clock) -> None:
    first = utcnow()
    assert CLOCK_START <= first < CLOCK_START + timedelta(minutes=5)
    time.sleep(0.01)
    assert utcnow() > first
    local = first.astimezone()  # in the process's own zone: UTC, as on a server
    assert local.utcoffset() == timedelta(0) and local.date() == date(2027, 4, 13)
    clock.shift(timedelta(days=1))
    assert utcnow().date() == date(2027, 4, 14)
    clock.move_to("2027-11-07T06:30:00Z", tick=False)
    real = real_utcnow()  # what subprocesses see goes on
    time.sleep(0.01)
    assert utcnow() == datetime(2027, 11, 7, 6, 30, tzinfo=UTC)
    assert real_utcnow() > real


@pytest.mark.clock(datetime(2026, 12, 31, 23, 30, tzinfo=UTC), tick=False)
def test_the_marker_sets_where_the_clock_starts() -> None:
    assert utcnow() == datetime(2026, 12, 31, 23, 30, tzinfo=UTC)


def test_tests_on_their_own_clock_are_marked_and_travel_first(
    request: pytest.FixtureRequest,
) -> None:
    on_a_clock = [item for item in request.session.items if "clock" in item.fixturenames]
    assert request.node not in on_a_clock
    for item in on_a_clock:
        assert item.get_closest_marker("clock_sensitive") is not None, item.nodeid
        assert item.fixturenames[0] == "clock", item.nodeid


def test_the_session_runs_at_the_clock_given(request: pytest.FixtureRequest) -> None:
    """Meaningful under --clock (see the next test, and .ci/run); skipped on the real clock."""
    instant = session_instant(request.config)
    if instant is None:
        pytest.skip("runs under --clock")
    now = utcnow()
    assert instant <= now < instant + timedelta(hours=1)  # ticking from the instant
    time.sleep(0.01)
    assert utcnow() > now


def pytest_in_a_subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_clock_option_runs_the_session_at_that_instant() -> None:
    here = "tests/test_clock.py::"
    done = pytest_in_a_subprocess(
        "-q",
        "--clock",
        "2027-03-14T07:30:00Z",
        here + "test_the_session_runs_at_the_clock_given",
        here + "test_the_marker_sets_where_the_clock_starts",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    module = "tests/test_clock.py"
    header = pytest_in_a_subprocess("--co", "--clock", "2027-03-14T07:30:00Z", module)
    assert "clock: 2027-03-14T07:30:00+00:00 = Sun 2027-03-14 01:30 CST Central" in header.stdout
    naive = pytest_in_a_subprocess("--co", "-q", "--clock", "2027-03-14T07:30", module)
    assert naive.returncode == 4  # a usage error
    assert "needs a zone" in naive.stderr
