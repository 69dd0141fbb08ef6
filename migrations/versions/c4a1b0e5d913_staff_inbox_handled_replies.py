"""staff inbox: patients' free-text replies marked handled (by whom, when, version);
the author of a text staff wrote

Revision ID: c4a1b0e5d913
Revises: a13c0de5e7f2
Create Date: 2026-12-02 14:05:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c4a1b0e5d913'
down_revision = 'a13c0de5e7f2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('handled_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column('version', sa.Integer(), server_default='1', nullable=False)
        )
        batch_op.create_foreign_key(
            'fk_inbound_messages_handled_by_id_staff_users',
            'staff_users',
            ['handled_by_id'],
            ['id'],
        )
        batch_op.create_index(
            'ix_inbound_messages_action_handled_at', ['action', 'handled_at'], unique=False
        )


    # Free-text replies received before the inbox were filed under no visit: file each
    # under the sender's first visit after it (what it was most likely about). They stay
    # unread: nobody has read them yet.
    op.execute(
        "UPDATE inbound_messages SET appointment_id = ("
        " SELECT a.id FROM appointments a"
        " JOIN patients p ON p.id = a.patient_id"
        " JOIN slots s ON s.id = a.slot_id"
        " WHERE p.phone = inbound_messages.from_phone"
        " AND s.starts_at > inbound_messages.received_at"
        " ORDER BY s.starts_at, a.id LIMIT 1)"
        " WHERE action = 'other' AND appointment_id IS NULL"
    )

    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('author_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            'fk_outbound_messages_author_id_staff_users', 'staff_users', ['author_id'], ['id']
        )


def downgrade():
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.drop_constraint('fk_outbound_messages_author_id_staff_users', type_='foreignkey')
        batch_op.drop_column('author_id')
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_messages_action_handled_at')
        batch_op.drop_constraint('fk_inbound_messages_handled_by_id_staff_users', type_='foreignkey')
        batch_op.drop_column('version')
        batch_op.drop_column('handled_by_id')
        batch_op.drop_column('handled_at')
