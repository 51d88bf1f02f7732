"""clocks_checkins_retention (issue 23): the acknowledgement clock a case was filed under,
and each case's retention (legal hold, reminder, deletion with the tombstone's readers).

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('concerns', sa.Column('ack_clock', sa.String(length=8), nullable=True))
    op.create_table('case_retention',
    sa.Column('concern_id', sa.String(length=40), nullable=False),
    sa.Column('on_hold', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('hold_since', sa.Date(), nullable=True),
    sa.Column('reminded_on', sa.Date(), nullable=True),
    sa.Column('deleted_on', sa.Date(), nullable=True),
    sa.Column('readers', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['concern_id'], ['concerns.id']),
    sa.PrimaryKeyConstraint('concern_id')
    )


def downgrade() -> None:
    op.drop_table('case_retention')
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of ``concerns`` would
    # drop the table that every case's rows point at.
    op.drop_column('concerns', 'ack_clock')
