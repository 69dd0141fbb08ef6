"""Database outages answer 503 with Retry-After, are logged once, and heal by themselves.

One test starts its own PostgreSQL server (initdb and pg_ctl in a temporary
directory, on a port of its own) so that it can stop and restart it; the
suite's shared server is never touched.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from scheduler.extensions import db
from scheduler.models import Appointment, AppointmentEvent, Patient, Slot
from tests.conftest import make_app
from tests.factories import api_booking, make_location, make_slot, new_phone

# A Tuesday morning in Central time: slots three days ahead are bookable.
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


class OwnPostgres:
    """A throwaway PostgreSQL server in a temporary directory, on a free port."""

    def __init__(self, bindir: Path, root: Path, as_user: list[str]) -> None:
        self.bindir, self.root, self.as_user = bindir, root, as_user
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, tool: str, *args: str) -> None:
        command = [*self.as_user, str(self.bindir / tool), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.root / "server.log")
        self.run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bindir() -> Path | None:
    found = sorted(
        Path(p).parent
        for p in (str(p) for p in Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if os.access(p, os.X_OK)
    )
    return found[-1] if found else None


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="scheduler-outage-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as postgres
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no 'postgres' user to run a server as")
        if shutil.which("runuser") is None:
            shutil.rmtree(root)
            pytest.skip("running as root without runuser to start a server as postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = OwnPostgres(bindir, root, as_user)
    try:
        server.init()
        server.start()
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL server: {exc.stderr.decode()[-300:]}")
    try:
        yield server
    finally:
        try:
            server.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(root, ignore_errors=True)


def book(client: FlaskClient, slot_id: int, phone: str) -> tuple[int, dict, dict]:
    response = client.post("/api/v1/appointments", json=api_booking(slot_id, phone=phone))
    return response.status_code, response.get_json(), dict(response.headers)


def assert_unavailable(client: FlaskClient, slug: str, slot_id: int, phone: str) -> None:
    status, body, headers = book(client, slot_id, phone)
    assert (status, body["error"]) == (503, "unavailable")
    assert int(headers["Retry-After"]) > 0
    page = client.get(f"/book/{slug}")
    assert page.status_code == 503 and int(page.headers["Retry-After"]) > 0
    assert "briefly unavailable" in page.get_data(as_text=True)
    listing = client.get("/api/v1/locations")
    assert listing.status_code == 503 and listing.get_json()["error"] == "unavailable"


def outage_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "scheduler.database"]


def test_bookings_go_on_through_a_postgresql_restart(
    own_postgres: OwnPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scheduler.database")
    app = make_app(own_postgres.url, DATABASE_POOL_SIZE=4, DATABASE_MAX_OVERFLOW=0)
    with time_machine.travel(NOW, tick=True):
        with app.app_context():
            db.create_all()
            location = make_location()
            slot_id, slug = make_slot(location, capacity=20).id, location.slug
            # Fill the pool with connections that the restart will kill.
            connections = [db.engine.connect() for _ in range(4)]
            for connection in connections:
                connection.exec_driver_sql("SELECT 1")
                connection.close()
            db.session.remove()
        client = app.test_client()
        before = [book(client, slot_id, new_phone()) for _ in range(2)]
        assert [status for status, _, _ in before] == [201, 201]

        # A restart between two requests: every pooled connection is dead, and the
        # requests after it must not notice.
        own_postgres.stop()
        own_postgres.start()
        between = [book(client, slot_id, new_phone()) for _ in range(6)]
        assert [status for status, _, _ in between] == [201] * 6
        assert client.get(f"/book/{slug}").status_code == 200
        assert outage_logs(caplog) == []

        # Stopped: 503s, logged once; started again: bookings go through at once.
        own_postgres.stop()
        refused = [new_phone() for _ in range(3)]
        for phone in refused:
            assert_unavailable(client, slug, slot_id, phone)
        assert len(outage_logs(caplog)) == 1  # logged once, not once per request

        own_postgres.start()
        after = [book(client, slot_id, new_phone()) for _ in range(6)]
        assert [status for status, _, _ in after] == [201] * 6  # the very first one too
        assert client.get(f"/book/{slug}").status_code == 200
        assert "available again" in outage_logs(caplog)[-1]

        with app.app_context():
            booked = {body["reference"] for _, body, _ in before + between + after}
            rows = db.session.scalars(sa.select(Appointment)).all()
            assert {appt.reference for appt in rows} == booked  # nothing lost, nothing extra
            assert all(appt.patient is not None and appt.events for appt in rows)
            assert db.session.get(Slot, slot_id).booked_count == len(booked)
            phones = set(db.session.scalars(sa.select(Patient.phone)))
            assert not phones & set(refused)
            assert db.session.scalar(sa.select(sa.func.count(AppointmentEvent.id))) == len(booked)
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def locked_sqlite(tmp_path: Path) -> Iterator[Flask]:
    app = make_app(f"sqlite:///{tmp_path / 'locked.sqlite3'}", DATABASE_LOCK_TIMEOUT_SECONDS=0.2)
    with app.app_context():
        db.create_all()
        db.session.remove()
    yield app
    with app.app_context():
        db.engine.dispose()


def test_a_sqlite_file_locked_past_its_timeout_answers_503_then_heals(
    locked_sqlite: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scheduler.database")
    app = locked_sqlite
    with time_machine.travel(NOW, tick=True):
        with app.app_context():
            location = make_location()
            slot_id, slug = make_slot(location).id, location.slug
            path = db.engine.url.database
            db.session.remove()
        client = app.test_client()
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process writing, and not letting go
        try:
            for _ in range(3):
                status, body, headers = book(client, slot_id, new_phone())
                assert (status, body["error"], headers["Retry-After"]) == (503, "unavailable", "10")
            assert client.get(f"/book/{slug}").status_code == 200  # readers go on (WAL)
            assert len(outage_logs(caplog)) == 1
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        status, _, _ = book(client, slot_id, new_phone())
        assert status == 201
        assert "available again" in outage_logs(caplog)[-1]
        with app.app_context():
            assert db.session.scalar(sa.select(sa.func.count(Appointment.id))) == 1
            assert db.session.get(Slot, slot_id).booked_count == 1


def test_an_unreachable_database_answers_503_on_pages_and_the_api(tmp_path: Path) -> None:
    app = make_app(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    client = app.test_client()
    page = client.get("/book/boerne")
    assert page.status_code == 503 and page.headers["Retry-After"] == "10"
    assert "briefly unavailable" in page.get_data(as_text=True)
    api = client.post("/api/v1/appointments", json=api_booking(1))
    assert api.status_code == 503 and api.get_json()["error"] == "unavailable"
    assert api.headers["Retry-After"] == "10"
