"""waitlist: entries, offers, and outbox texts that belong to an offer

Revision ID: c4a1e2f0w417
Revises: b0a4d13c1054
Create Date: 2026-12-02 14:05:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4a1e2f0w417'
down_revision = 'b0a4d13c1054'
branch_labels = None
depends_on = None

ON_THE_LIST = "status IN ('waiting', 'offered')"


def upgrade():
    op.create_table(
        'waitlist_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reference', sa.String(length=10), nullable=False),
        sa.Column('location_id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('person_key', sa.String(length=200), nullable=False),
        sa.Column('earliest', sa.Date(), nullable=False),
        sa.Column('latest', sa.Date(), nullable=False),
        sa.Column('weekdays', sa.String(length=20), nullable=False),
        sa.Column('part_of_day', sa.String(length=10), nullable=False),
        sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('status_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('appointment_id', sa.Integer(), nullable=True),
        sa.Column('by_text', sa.Boolean(), nullable=False),
        sa.Column('by_email', sa.Boolean(), nullable=False),
        sa.Column('language', sa.String(length=2), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('manage_nonce', sa.String(length=32), nullable=False),
        sa.Column('compared_with', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_waitlist_entries_appointment_id_appointments')),
        sa.ForeignKeyConstraint(['location_id'], ['locations.id'], name=op.f('fk_waitlist_entries_location_id_locations')),
        sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_waitlist_entries_patient_id_patients')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_entries')),
        sa.UniqueConstraint('reference', name=op.f('uq_waitlist_entries_reference')),
    )
    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.create_index('ix_waitlist_entries_location_status', ['location_id', 'status', 'joined_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_waitlist_entries_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(
            'uq_waitlist_entries_person_on_list',
            ['location_id', 'person_key'],
            unique=True,
            postgresql_where=sa.text(ON_THE_LIST),
            sqlite_where=sa.text(ON_THE_LIST),
        )

    op.create_table(
        'waitlist_offers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('entry_id', sa.Integer(), nullable=False),
        sa.Column('slot_id', sa.Integer(), nullable=False),
        sa.Column('nonce', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('outcome', sa.String(length=10), nullable=True),
        sa.Column('outcome_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('offered_by', sa.String(length=254), nullable=True),
        sa.Column('appointment_id', sa.Integer(), nullable=True),
        sa.Column('days_sooner', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_waitlist_offers_appointment_id_appointments')),
        sa.ForeignKeyConstraint(['entry_id'], ['waitlist_entries.id'], name=op.f('fk_waitlist_offers_entry_id_waitlist_entries')),
        sa.ForeignKeyConstraint(['slot_id'], ['slots.id'], name=op.f('fk_waitlist_offers_slot_id_slots')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_offers')),
    )
    with op.batch_alter_table('waitlist_offers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waitlist_offers_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_waitlist_offers_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index('ix_waitlist_offers_slot_outcome', ['slot_id', 'outcome'], unique=False)

    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('waitlist_offer_id', sa.Integer(), nullable=True))
        batch_op.alter_column('appointment_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_index(batch_op.f('ix_outbound_messages_waitlist_offer_id'), ['waitlist_offer_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_outbound_messages_waitlist_offer_id_waitlist_offers'), 'waitlist_offers', ['waitlist_offer_id'], ['id'])


def downgrade():
    op.execute("DELETE FROM message_attempts WHERE message_id IN "
               "(SELECT id FROM outbound_messages WHERE appointment_id IS NULL)")
    op.execute("DELETE FROM outbound_messages WHERE appointment_id IS NULL")
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_outbound_messages_waitlist_offer_id_waitlist_offers'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_outbound_messages_waitlist_offer_id'))
        batch_op.alter_column('appointment_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('waitlist_offer_id')

    with op.batch_alter_table('waitlist_offers', schema=None) as batch_op:
        batch_op.drop_index('ix_waitlist_offers_slot_outcome')
        batch_op.drop_index(batch_op.f('ix_waitlist_offers_expires_at'))
        batch_op.drop_index(batch_op.f('ix_waitlist_offers_entry_id'))
    op.drop_table('waitlist_offers')

    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.drop_index('uq_waitlist_entries_person_on_list')
        batch_op.drop_index(batch_op.f('ix_waitlist_entries_patient_id'))
        batch_op.drop_index('ix_waitlist_entries_location_status')
    op.drop_table('waitlist_entries')
