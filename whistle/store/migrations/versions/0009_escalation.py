"""escalation (issue 19): the tier a case reached, when, and a pending key hand-over

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('concerns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalation_tier', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('escalated_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('handover_due', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('concerns', schema=None) as batch_op:
        batch_op.drop_column('handover_due')
        batch_op.drop_column('escalated_on')
        batch_op.drop_column('escalation_tier')
