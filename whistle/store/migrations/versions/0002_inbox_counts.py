"""inbox counts: cases per reviewer and status

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inbox_counts',
    sa.Column('reviewer_id', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['reviewer_id'], ['reviewers.id'], ),
    sa.PrimaryKeyConstraint('reviewer_id', 'status')
    )
    op.execute("INSERT INTO inbox_counts (reviewer_id, status, n) "
               "SELECT reviewer_id, status, count(*) FROM assignments "
               "GROUP BY reviewer_id, status")


def downgrade() -> None:
    op.drop_table('inbox_counts')
