"""drop the unused counters table

Rate-limit counters live in the ``limits`` storage (memory, or Redis for several
processes), never in this table: nothing ever read or wrote it.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table('counters')


def downgrade() -> None:
    op.create_table('counters',
                    sa.Column('key', sa.String(length=128), nullable=False),
                    sa.Column('window', sa.Integer(), nullable=False),
                    sa.Column('count', sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint('key', 'window'))
