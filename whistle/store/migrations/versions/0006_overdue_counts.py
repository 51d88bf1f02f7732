"""each reviewer's overdue cases counted in inbox_counts (the row whose status is overdue)

The overdue filter's total and the reviewer's overdue count read the partial
index of overdue assignments, one entry per overdue case: the overdue page cost
more the more overdue cases the reviewer had. Kept as a count, like the statuses' totals.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM inbox_counts WHERE status = 'overdue'")
    op.execute("INSERT INTO inbox_counts (reviewer_id, status, n) "
               "SELECT reviewer_id, 'overdue', count(*) FROM assignments "
               "WHERE overdue GROUP BY reviewer_id")


def downgrade() -> None:
    op.execute("DELETE FROM inbox_counts WHERE status = 'overdue'")
