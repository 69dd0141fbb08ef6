"""one outbox for texts and emails: a channel column, email addresses and their unsubscribes

Revision ID: e3a11c0de5a1
Revises: c4a1e2f0w417
Create Date: 2026-12-02 14:10:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "e3a11c0de5a1"
down_revision = "c4a1e2f0w417"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "email_address_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("unsubscribed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_address_states")),
        sa.UniqueConstraint("email", name=op.f("uq_email_address_states_email")),
    )
    # Every existing row is a text.
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("channel", sa.String(length=5), server_default="sms", nullable=False)
        )
        batch_op.add_column(sa.Column("to_email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("subject", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("payload", sa.Text(), nullable=True))
        batch_op.alter_column("to_phone", existing_type=sa.String(length=20), nullable=True)
        batch_op.drop_constraint(
            batch_op.f("uq_outbound_messages_appointment_id_kind"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_outbound_messages_appointment_id_kind_channel"),
            ["appointment_id", "kind", "channel"],
        )
        batch_op.create_index(
            batch_op.f("ix_outbound_messages_to_email"), ["to_email"], unique=False
        )
        batch_op.create_check_constraint(
            "addressed",
            "(channel = 'sms' AND to_phone IS NOT NULL) OR "
            "(channel = 'email' AND to_email IS NOT NULL AND payload IS NOT NULL)",
        )


def downgrade():
    # Emails cannot be texts: they go with the channel.
    op.execute(
        "DELETE FROM message_attempts WHERE message_id IN "
        "(SELECT id FROM outbound_messages WHERE channel = 'email')"
    )
    op.execute("DELETE FROM outbound_messages WHERE channel = 'email'")
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_outbound_messages_addressed"), type_="check")
        batch_op.drop_index(batch_op.f("ix_outbound_messages_to_email"))
        batch_op.drop_constraint(
            batch_op.f("uq_outbound_messages_appointment_id_kind_channel"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_outbound_messages_appointment_id_kind"), ["appointment_id", "kind"]
        )
        batch_op.alter_column("to_phone", existing_type=sa.String(length=20), nullable=False)
        batch_op.drop_column("payload")
        batch_op.drop_column("subject")
        batch_op.drop_column("to_email")
        batch_op.drop_column("channel")
    op.drop_table("email_address_states")
