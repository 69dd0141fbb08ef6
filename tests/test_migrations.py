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


def test_the_patient_migration_merges_the_records_of_one_person(blank_database_url: str) -> None:
    """Before one patient per person, each booking made its own record: the upgrade merges
    the records of one person (phone, birth date, last name) into the newest, and audits it."""
    app = make_app(blank_database_url)
    with app.app_context():
        upgrade(revision="384778767a5b")
        rows = [
            # id, first name, last name, phone, birth date, email
            (1, "Maria", "García", "+18302574811", "1956-04-02", "old@example.com"),
            (2, "Maria", "garcia ", "+18302574811", "1956-04-02", None),
            (3, "Maria", "GARCIA", "+18302574811", "1956-04-02", None),
            (4, "Luz", "Garcia", "+18302574811", "1990-01-01", None),  # another person
            (5, "Ana", "Solis", "+18302574812", None, None),  # no birth date: never matched
        ]
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO locations (id, slug, name, code, address, address_is_placeholder,"
                    " phone, timezone, closed_on_federal_holidays, position, is_active)"
                    " VALUES (1, 'boerne', 'Boerne', 'BRN', 'x', false, '+12109208945',"
                    " 'America/Chicago', true, 1, true)"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO slots (id, location_id, starts_at, ends_at, capacity,"
                    " booked_count, is_blocked, block_reason, created_at)"
                    " VALUES (1, 1, '2027-01-05 16:00:00', '2027-01-05 16:30:00', 9, 5, false, '',"
                    " '2026-11-01 10:00:00')"
                )
            )
            for pid, first, last, phone, born, email in rows:
                conn.execute(
                    sa.text(
                        "INSERT INTO patients (id, first_name, last_name, phone, email,"
                        " date_of_birth, language, sms_consent, created_at)"
                        " VALUES (:id, :first, :last, :phone, :email, :born, 'en', false,"
                        " '2026-11-01 10:00:00')"
                    ),
                    {
                        "id": pid,
                        "first": first,
                        "last": last,
                        "phone": phone,
                        "email": email,
                        "born": born,
                    },
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO appointments (id, reference, slot_id, patient_id, status,"
                        " source, manage_nonce, created_at, updated_at, version)"
                        " VALUES (:id, :ref, 1, :id, 'booked', 'online_form', 'n',"
                        " '2026-11-01 10:00:00', '2026-11-01 10:00:00', 1)"
                    ),
                    {"id": pid, "ref": f"BRN-{pid}{pid}{pid}{pid}"},
                )
        upgrade()
        with db.engine.connect() as conn:
            owners = dict(conn.execute(sa.text("SELECT id, patient_id FROM appointments")).all())
            patients = dict(conn.execute(sa.text("SELECT id, email FROM patients")).all())
            merges = conn.execute(
                sa.text("SELECT actor FROM audit_entries WHERE action = 'patient.merged'")
            ).all()
        assert owners == {1: 3, 2: 3, 3: 3, 4: 4, 5: 5}
        assert patients == {3: "old@example.com", 4: None, 5: None}
        assert len(merges) == 2 and {m.actor for m in merges} == {"system (migration)"}
        downgrade(revision="base")
        db.engine.dispose()


def test_free_text_replies_from_before_the_inbox_are_filed_under_the_next_visit(
    blank_database_url: str,
) -> None:
    """Replies stored before the inbox had no visit; the upgrade files each under the
    sender's first visit after it, and leaves them unread."""
    app = make_app(blank_database_url)
    with app.app_context():
        upgrade(revision="35f08b94d658")
        statements = [
            "INSERT INTO locations (id, slug, name, code, address, address_is_placeholder,"
            " phone, timezone, closed_on_federal_holidays, position, is_active)"
            " VALUES (1, 'boerne', 'Boerne', 'BRN', 'x', false, '+12109208945',"
            " 'America/Chicago', true, 1, true)",
            "INSERT INTO slots (id, location_id, starts_at, ends_at, capacity, booked_count,"
            " is_blocked, block_reason, created_at) VALUES"
            " (1, 1, '2027-01-05 16:00:00', '2027-01-05 16:30:00', 9, 1, false, '',"
            " '2026-11-01 10:00:00'),"
            " (2, 1, '2027-01-12 16:00:00', '2027-01-12 16:30:00', 9, 1, false, '',"
            " '2026-11-01 10:00:00')",
            "INSERT INTO patients (id, first_name, last_name, phone, language, sms_consent,"
            " created_at) VALUES (1, 'Maria', 'Garza', '+18302574811', 'en', true,"
            " '2026-11-01 10:00:00')",
            "INSERT INTO appointments (id, reference, slot_id, patient_id, status, source,"
            " manage_nonce, created_at, updated_at, version) VALUES"
            " (1, 'BRN-1111', 1, 1, 'completed', 'online_form', 'n', '2026-11-01 10:00:00',"
            " '2026-11-01 10:00:00', 1),"
            " (2, 'BRN-2222', 2, 1, 'booked', 'online_form', 'n', '2026-11-01 10:00:00',"
            " '2026-11-01 10:00:00', 1)",
            "INSERT INTO inbound_messages (id, provider_sid, from_phone, to_phone, body,"
            " received_at, action, appointment_id) VALUES"
            " (1, 'SM1', '+18302574811', '+1210', 'late!', '2027-01-05 15:00:00', 'other', NULL),"
            " (2, 'SM2', '+18302574811', '+1210', 'thanks', '2027-01-06 15:00:00', 'other', NULL),"
            " (3, 'SM3', '+18302574811', '+1210', 'C', '2027-01-06 15:00:00', 'confirm', NULL),"
            " (4, 'SM4', '+18302574899', '+1210', 'who?', '2027-01-06 15:00:00', 'other', NULL),"
            " (5, 'SM5', '+18302574811', '+1210', 'bye', '2027-02-01 15:00:00', 'other', NULL)",
        ]
        with db.engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
        upgrade()
        with db.engine.connect() as conn:
            filed = dict(
                conn.execute(sa.text("SELECT id, appointment_id FROM inbound_messages")).all()
            )
            unread = conn.execute(
                sa.text("SELECT count(*) FROM inbound_messages WHERE handled_at IS NULL")
            ).scalar()
        assert filed == {1: 1, 2: 2, 3: None, 4: None, 5: None}
        assert unread == 5
        downgrade(revision="base")
        db.engine.dispose()


def test_the_outbox_migration_makes_every_existing_row_a_text(blank_database_url: str) -> None:
    """Rows queued before email are texts; a downgrade drops the emails and keeps the texts."""
    app = make_app(blank_database_url)
    with app.app_context():
        upgrade(revision="c4a1b0e5d913")
        statements = [
            "INSERT INTO locations (id, slug, name, code, address, address_is_placeholder,"
            " phone, timezone, closed_on_federal_holidays, position, is_active)"
            " VALUES (1, 'boerne', 'Boerne', 'BRN', 'x', false, '+12109208945',"
            " 'America/Chicago', true, 1, true)",
            "INSERT INTO slots (id, location_id, starts_at, ends_at, capacity, booked_count,"
            " is_blocked, block_reason, created_at) VALUES (1, 1, '2027-01-05 16:00:00',"
            " '2027-01-05 16:30:00', 2, 1, false, '', '2026-11-01 10:00:00')",
            "INSERT INTO patients (id, first_name, last_name, phone, email, language,"
            " sms_consent, created_at) VALUES (1, 'Ana', 'Solis', '+18302574812',"
            " 'ana@example.com', 'en', true, '2026-11-01 10:00:00')",
            "INSERT INTO appointments (id, reference, slot_id, patient_id, status, source,"
            " manage_nonce, created_at, updated_at, version) VALUES (1, 'BRN-1111', 1, 1,"
            " 'booked', 'online_form', 'n', '2026-11-01 10:00:00', '2026-11-01 10:00:00', 1)",
            "INSERT INTO outbound_messages (id, appointment_id, kind, to_phone, language, body,"
            " status, due_at, attempts, possible_duplicate, created_at, updated_at)"
            " VALUES (1, 1, 'confirmation', '+18302574812', 'en', 'Hi', 'sent',"
            " '2026-11-01 10:00:00', 1, false, '2026-11-01 10:00:00', '2026-11-01 10:00:00')",
        ]
        with db.engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
        upgrade()
        with db.engine.begin() as conn:
            assert conn.execute(sa.text("SELECT channel FROM outbound_messages")).all() == [
                ("sms",)
            ]
            conn.execute(
                sa.text(
                    "INSERT INTO outbound_messages (id, appointment_id, kind, channel, to_email,"
                    " language, body, payload, status, due_at, attempts, possible_duplicate,"
                    " created_at, updated_at) VALUES (2, 1, 'confirmation', 'email',"
                    " 'ana@example.com', 'en', 'Hi', 'MIME', 'pending', '2026-11-01 10:00:00',"
                    " 0, false, '2026-11-01 10:00:00', '2026-11-01 10:00:00')"
                )
            )
            with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
                conn.execute(  # an email needs its address
                    sa.text(
                        "INSERT INTO outbound_messages (id, appointment_id, kind, channel,"
                        " language, body, payload, status, due_at, attempts,"
                        " possible_duplicate, created_at, updated_at) VALUES (3, 1, 'reminder',"
                        " 'email', 'en', 'Hi', 'MIME', 'pending', '2026-11-01 10:00:00', 0,"
                        " false, '2026-11-01 10:00:00', '2026-11-01 10:00:00')"
                    )
                )
        downgrade(revision="c4a1b0e5d913")
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM outbound_messages")).all() == [(1,)]
        downgrade(revision="base")
        db.engine.dispose()
