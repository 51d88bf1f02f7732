"""experience (issue 21): what each reviewer last saw of each case (the inbox's new-activity
markers), and the reporter's own copy of what they sent, sealed with the thread key.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('case_seen',
    sa.Column('concern_id', sa.String(length=40), nullable=False),
    sa.Column('reviewer_id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['concern_id'], ['concerns.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('concern_id', 'reviewer_id')
    )
    op.create_table('reporter_copies',
    sa.Column('concern_id', sa.String(length=40), nullable=False),
    sa.Column('body_ct', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['concern_id'], ['concerns.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('concern_id')
    )
    # A case a reviewer opened before this migration counts as seen up to that opening.
    op.execute(
        "INSERT INTO case_seen (concern_id, reviewer_id, seq) "
        "SELECT e.concern_id, e.actor, MAX(e.seq) FROM audit_events e "
        "JOIN assignments a ON a.concern_id = e.concern_id AND a.reviewer_id = e.actor "
        "WHERE e.type = 'opened' GROUP BY e.concern_id, e.actor")


def downgrade() -> None:
    op.drop_table('reporter_copies')
    op.drop_table('case_seen')
