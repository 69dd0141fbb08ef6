"""Fixtures: an app per test with its own database, on SQLite and on PostgreSQL.

PostgreSQL tests use one database that this session creates (and drops at
the end), emptied after every test; they skip with the reason when no server
answers at TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres).

The clock: no test reads the wall clock. A test whose outcome depends on the
instant (sending hours, "today", "this week", the minimum notice, the horizon)
runs on its own clock: the ``clock`` fixture, or ``@pytest.mark.clock(instant)``;
such tests are marked ``clock_sensitive``. Every other test must pass at any
instant: ``pytest --clock 2027-03-14T07:30:00Z`` runs the whole session at that
instant, ticking, to prove it; a test's own clock overrides it. Subprocesses,
Chromium and the database servers keep the real clock.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from time_machine import TimeMachineFixture
from werkzeug.serving import make_server

from scheduler import create_app
from scheduler.extensions import db
from tests.factories import CHICAGO

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_DB_PREFIX = "scheduler_test_"
DB_KINDS = ["sqlite", "postgresql"]

# Where the ``clock`` fixture starts: a Tuesday morning in Central time, inside
# sending hours, in a week with no holiday and no DST change, off the half
# hour so that no slot sits exactly on the minimum notice while the clock ticks.
CLOCK_START = datetime(2027, 4, 13, 10, 7, tzinfo=CHICAGO)  # 15:07 UTC
CLOCK_MARK = "clock_sensitive"
OWN_CLOCK_MARK = "own_clock"
SERVER_ZONE = ZoneInfo("UTC")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock",
        metavar="INSTANT",
        help="run the whole session with the clock set to INSTANT (ISO 8601 with a zone, "
        "e.g. 2027-03-14T07:30:00Z), ticking; tests that set their own clock keep it",
    )


def session_instant(config: pytest.Config) -> datetime | None:
    text = config.getoption("clock")
    if not text:
        return None
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise pytest.UsageError(f"--clock {text!r} is not an ISO 8601 instant") from None
    if instant.utcoffset() is None:
        raise pytest.UsageError(f"--clock {text!r} needs a zone, e.g. {text}Z or {text}-06:00")
    return instant


_session_travel = pytest.StashKey[time_machine.travel]()


def pytest_configure(config: pytest.Config) -> None:
    instant = session_instant(config)
    if instant is not None:
        travel = time_machine.travel(instant, tick=True)
        travel.start()
        config.stash[_session_travel] = travel


def pytest_unconfigure(config: pytest.Config) -> None:
    travel = config.stash.get(_session_travel, None)
    if travel is not None:
        travel.stop()
        del config.stash[_session_travel]


def pytest_report_header(config: pytest.Config) -> str:
    instant = session_instant(config)
    if instant is None:
        return "clock: the real clock (--clock INSTANT to travel)"
    local = instant.astimezone(CHICAGO)
    return f"clock: {instant.isoformat()} = {local:%a %Y-%m-%d %H:%M %Z} Central, ticking"


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that sets its own clock touches time: mark it, and set the clock first.

    First, so that nothing a fixture does (signing in, booking) happens on
    another clock than the test's. It is also marked ``own_clock``: its clock does
    not follow ``--clock``, so it runs the same at every session instant.
    """
    for item in items:
        names = getattr(item, "fixturenames", [])
        if item.get_closest_marker("clock") and "clock" not in names:
            names.insert(0, "clock")
        if "clock" in names:
            item.add_marker(CLOCK_MARK)
            item.add_marker(OWN_CLOCK_MARK)
            names.remove("clock")
            names.insert(0, "clock")


class Clock:
    """time-machine's fixture, seen as a server sees time: the process's own zone is UTC.

    (time-machine sets TZ to a destination's ZoneInfo; a test travelling to a
    Central instant would otherwise hide code that takes the server's date.)
    """

    def __init__(self, machine: TimeMachineFixture) -> None:
        self.machine = machine

    def move_to(self, instant: datetime | str, tick: bool | None = None) -> None:
        if isinstance(instant, str):
            instant = datetime.fromisoformat(instant)
        if instant.utcoffset() is None:
            raise ValueError(f"{instant} needs a zone")
        self.machine.move_to(instant.astimezone(SERVER_ZONE), tick=tick)

    def shift(self, delta: timedelta) -> None:
        self.machine.shift(delta)


def real_utcnow() -> datetime:
    """The wall clock, even while time-machine travels: the clock subprocesses run on.

    Only for comparing with what a subprocess wrote by its clock (dispatcher leases).
    """
    if time_machine.escape_hatch.is_travelling():
        return time_machine.escape_hatch.datetime.datetime.now(UTC)
    return datetime.now(UTC)


def _clock_start(instant: datetime = CLOCK_START, *, tick: bool = True) -> tuple[datetime, bool]:
    return instant, tick


@pytest.fixture
def clock(request: pytest.FixtureRequest, time_machine: TimeMachineFixture) -> Clock:
    """The test's own clock: travelled to CLOCK_START, ticking; set up before other fixtures.

    ``@pytest.mark.clock(instant, tick=False)`` starts it elsewhere (a bare
    ``@pytest.mark.clock`` is enough to run on it); ``clock.move_to(instant)``
    and ``clock.shift(timedelta)`` move it. Threads in this process follow it;
    subprocesses, Chromium and the database servers do not.
    """
    marker = request.node.get_closest_marker("clock")
    instant, tick = _clock_start(*marker.args, **marker.kwargs) if marker else _clock_start()
    clock = Clock(time_machine)
    clock.move_to(instant, tick=tick)
    return clock


def pg_admin_engine() -> sa.Engine:
    return sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


@functools.cache
def pg_unreachable_reason() -> str | None:
    """Asked once per test session, not once per PostgreSQL test."""
    try:
        engine = pg_admin_engine()
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: skip, with the reason
        return f"PostgreSQL not reachable at {ADMIN_URL}: {type(exc).__name__}: {exc}"
    return None


def create_pg_database() -> str:
    """A fresh, empty database; returns its URL. Leftovers of dead test runs are dropped."""
    engine = pg_admin_engine()
    name = f"{TEST_DB_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with engine.connect() as conn:
        for (old,) in conn.execute(
            sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
            {"p": TEST_DB_PREFIX + "%"},
        ):
            match = re.match(rf"{TEST_DB_PREFIX}(\d+)_", old)
            if match and not _pid_alive(int(match.group(1))):
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return sa.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = sa.make_url(url).database
    engine = pg_admin_engine()
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """The session's PostgreSQL database with the schema in place, or None without a server."""
    if pg_unreachable_reason() is not None:
        yield None
        return
    url = create_pg_database()
    engine = sa.create_engine(url)
    db.metadata.create_all(engine)
    engine.dispose()
    yield url
    drop_pg_database(url)


def empty_all_tables(engine: sa.Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=DB_KINDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    yield request.getfixturevalue("pg_database")


def make_app(database_url: str, **overrides: Any) -> Flask:
    config = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key",
        "PUBLIC_BASE_URL": "https://book.example.test",
        "RATELIMIT_ENABLED": False,
        "RATELIMIT_STORAGE_URI": "memory://",
        "DATABASE_POOL_SIZE": 5,
        "DATABASE_MAX_OVERFLOW": 60,
    }
    config.update(overrides)
    return create_app(config)


@pytest.fixture
def app_config() -> dict[str, Any]:
    """Per-test config overrides; override this fixture (or mutate it) in a test module."""
    return {}


@pytest.fixture
def app(database_url: str, app_config: dict[str, Any]) -> Iterator[Flask]:
    app = make_app(database_url, **app_config)
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            empty_all_tables(db.engine)
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


class ClosedAtShutdown:
    """WSGI middleware: every response is closed, at the latest when the server stops.

    Werkzeug's development server skips a response's close() when the browser resets the
    connection while the server drains the request (serving.py, ``run_wsgi``): Chromium
    does that to a script or an icon it no longer needs, and the static file's handle was
    left to the garbage collector (a ResourceWarning in whichever test ran next).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.responses: list[_ClosedOnce] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        response = _ClosedOnce(self.app(environ, start_response))
        self.responses.append(response)
        return response

    def close_all(self) -> None:
        for response in self.responses:
            response.close()


class _ClosedOnce:
    def __init__(self, iterable: Any) -> None:
        self.iterable = iterable
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.iterable)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if hasattr(self.iterable, "close"):
                self.iterable.close()


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app served by a real threaded HTTP server on 127.0.0.1; yields its base URL."""
    wsgi = ClosedAtShutdown(app)
    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        wsgi.close_all()


HIDDEN_INPUT = re.compile(r'<input[^>]*type="hidden"[^>]*>')
ATTR = re.compile(r'(\w+)="([^"]*)"')


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a page (CSRF token, submission id, slot id)."""
    fields = {}
    for tag in HIDDEN_INPUT.findall(html):
        attrs = dict(ATTR.findall(tag))
        if "name" in attrs:
            fields[attrs["name"]] = attrs.get("value", "")
    return fields
