"""The migrations build a blank database that matches the models, on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from scheduler.extensions import db
from tests.conftest import (
    DB_KINDS,
    create_pg_database,
    drop_pg_database,
    make_app,
    pg_unreachable_reason,
)


@pytest.fixture(params=DB_KINDS)
def blank_database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.sqlite3'}"
        return
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


def test_migrations_build_a_blank_database_matching_the_models(blank_database_url: str) -> None:
    app = make_app(blank_database_url)
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, db.metadata)
        assert diff == []
        tables = set(sa.inspect(db.engine).get_table_names())
        assert {"locations", "slots", "appointments", "patients", "alembic_version"} <= tables
        downgrade(revision="base")
        assert sa.inspect(db.engine).get_table_names() == ["alembic_version"]
        db.engine.dispose()
