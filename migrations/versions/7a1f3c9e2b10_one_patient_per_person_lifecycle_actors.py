"""one patient per person (match key, duplicates merged); lifecycle actor names in history

Revision ID: 7a1f3c9e2b10
Revises: 384778767a5b
Create Date: 2026-12-02 07:10:00.000000

"""
import unicodedata
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '7a1f3c9e2b10'
down_revision = '384778767a5b'
branch_labels = None
depends_on = None

# History actors as the lifecycle names them (staff:<id> is kept as it is).
ACTOR_RENAMES = {
    "sms": "patient_text",
    "patient": "patient_web",
    "online_form": "patient_web",
}


def _normalised_name(name):
    """A copy of scheduler.appointments.patients.normalised_name as of this migration."""
    decomposed = unicodedata.normalize("NFKD", name.replace("\u2019", "'"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


def _match_key(phone, last_name, date_of_birth):
    if date_of_birth is None:
        return None
    day = date_of_birth if isinstance(date_of_birth, str) else date_of_birth.isoformat()
    return f"{phone}|{day[:10]}|{_normalised_name(last_name)}"


def upgrade():
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('match_key', sa.String(length=200), nullable=True))

    connection = op.get_bind()
    patients = sa.table(
        'patients',
        sa.column('id', sa.Integer),
        sa.column('phone', sa.String),
        sa.column('last_name', sa.String),
        sa.column('date_of_birth', sa.Date),
        sa.column('email', sa.String),
        sa.column('match_key', sa.String),
    )
    appointments = sa.table(
        'appointments', sa.column('id', sa.Integer), sa.column('patient_id', sa.Integer)
    )
    audit_entries = sa.table(
        'audit_entries',
        sa.column('at', sa.DateTime(timezone=True)),
        sa.column('actor', sa.String),
        sa.column('action', sa.String),
        sa.column('target_type', sa.String),
        sa.column('target_id', sa.Integer),
        sa.column('target_label', sa.String),
        sa.column('details', sa.JSON),
        sa.column('note', sa.Text),
    )
    now = datetime.now(UTC)
    if connection.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    rows = connection.execute(
        sa.select(
            patients.c.id,
            patients.c.phone,
            patients.c.last_name,
            patients.c.date_of_birth,
            patients.c.email,
        ).order_by(patients.c.id)
    ).all()
    # The newest record of a person carries the details given last: it is kept, and the
    # older records' appointments move to it.
    keeper = {}
    for row in rows:
        key = _match_key(row.phone, row.last_name, row.date_of_birth)
        if key is not None:
            keeper[key] = row
    for row in rows:
        key = _match_key(row.phone, row.last_name, row.date_of_birth)
        if key is None:
            continue
        kept = keeper[key]
        if kept.id == row.id:
            connection.execute(
                patients.update().where(patients.c.id == row.id).values(match_key=key)
            )
            continue
        moved = connection.execute(
            appointments.update()
            .where(appointments.c.patient_id == row.id)
            .values(patient_id=kept.id)
        ).rowcount
        if kept.email is None and row.email:
            connection.execute(
                patients.update().where(patients.c.id == kept.id).values(email=row.email)
            )
        connection.execute(patients.delete().where(patients.c.id == row.id))
        connection.execute(
            audit_entries.insert().values(
                at=now,
                actor="system (migration)",
                action="patient.merged",
                target_type="patient",
                target_id=kept.id,
                target_label=f"patient #{kept.id}",
                details={"merged_patient_id": row.id, "appointments_moved": moved},
                note="",
            )
        )

    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_patients_match_key'), ['match_key'])

    events = sa.table('appointment_events', sa.column('actor', sa.String))
    for old, new in ACTOR_RENAMES.items():
        connection.execute(events.update().where(events.c.actor == old).values(actor=new))


def downgrade():
    events = sa.table('appointment_events', sa.column('actor', sa.String))
    connection = op.get_bind()
    connection.execute(
        events.update().where(events.c.actor == 'patient_text').values(actor='sms')
    )
    connection.execute(
        events.update().where(events.c.actor == 'patient_web').values(actor='patient')
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_patients_match_key'), type_='unique')
        batch_op.drop_column('match_key')
