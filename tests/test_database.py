from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from scheduler.database import sqlite_file_of
from scheduler.extensions import db
from tests.conftest import make_app, pg_unreachable_reason
from tests.factories import make_appointment


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////srv/app/instance/scheduler.sqlite3", "/srv/app/instance/scheduler.sqlite3"),
        ("sqlite:///relative.db", "relative.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:///file:/srv/data.db?uri=true", "/srv/data.db"),
        ("sqlite:///file:shared?mode=memory&cache=shared&uri=true", None),
        ("postgresql://postgres@127.0.0.1/x", None),
    ],
)
def test_sqlite_file_of(url: str, expected: str | None) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        assert sqlite_file_of(engine) == expected
    finally:
        engine.dispose()


def test_bookings_work_on_a_uri_sqlite_address(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///file:{tmp_path / 'uri.sqlite3'}?uri=true")
    with app.app_context():
        db.create_all()
        assert make_appointment().status == "booked"
        assert (tmp_path / "uri.sqlite3.writelock").exists()
        db.session.remove()
        db.engine.dispose()


def test_postgresql_sessions_run_in_utc(pg_database: str | None) -> None:
    """Whatever the server's zone: instants in the repeated autumn hour stay distinct."""
    if pg_database is None:
        pytest.skip(pg_unreachable_reason() or "PostgreSQL not reachable")
    app = make_app(pg_database)
    with app.app_context():
        assert db.session.scalar(sa.text("SHOW timezone")) == "UTC"
        db.session.remove()
        db.engine.dispose()
