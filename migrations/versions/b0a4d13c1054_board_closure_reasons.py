"""day board and closures: slots blocked by the schedule say so apart from their reason,
closures remember when they were added

Revision ID: b0a4d13c1054
Revises: c4a1b0e5d913
Create Date: 2026-12-02 14:05:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b0a4d13c1054'
down_revision = 'c4a1b0e5d913'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('slots', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('blocked_by_schedule', sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table('schedule_exceptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_at', sa.DateTime(timezone=True), nullable=True))
    # Until now the reason "Outside opening hours" was how the schedule marked its blocks.
    op.execute(
        "UPDATE slots SET blocked_by_schedule = true "
        "WHERE is_blocked AND block_reason = 'Outside opening hours'"
    )


def downgrade():
    op.execute(
        "UPDATE slots SET block_reason = 'Outside opening hours' "
        "WHERE is_blocked AND blocked_by_schedule"
    )
    with op.batch_alter_table('schedule_exceptions', schema=None) as batch_op:
        batch_op.drop_column('created_at')
    with op.batch_alter_table('slots', schema=None) as batch_op:
        batch_op.drop_column('blocked_by_schedule')
