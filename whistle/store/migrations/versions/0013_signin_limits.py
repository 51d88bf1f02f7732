"""signin_limits (issue 20): sign-in and status-miss counters in the database, shared by
every worker (the default ``RATELIMIT_STORAGE_URI``), and per-account lockouts with back-off.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('limit_hits',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_limit_hits_kind_key_at', 'limit_hits', ['kind', 'key', 'at'],
                    unique=False)
    op.create_table('signin_lockouts',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('lockouts', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )


def downgrade() -> None:
    op.drop_table('signin_lockouts')
    op.drop_index('ix_limit_hits_kind_key_at', table_name='limit_hits')
    op.drop_table('limit_hits')
