"""overdue on assignments, and partial indexes for the overdue inbox and the attention list

The overdue filter, the overdue-first inbox (the reviewer's home page) and the
reviewer's overdue count joined every one of the reviewer's assignments to its
case (a cost that grew with them); the administrators'
attention list read every case. Both now read partial indexes that hold only
the cases they list.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on either engine (no table rebuild at millions of assignments).
    op.add_column('assignments', sa.Column('overdue', sa.Boolean(), nullable=False,
                                           server_default=sa.false()))
    assignments = sa.table('assignments', sa.column('concern_id'), sa.column('overdue'))
    concerns = sa.table('concerns', sa.column('id'), sa.column('overdue'))
    op.execute(assignments.update().where(assignments.c.concern_id.in_(
        sa.select(concerns.c.id).where(concerns.c.overdue.is_(True)))).values(overdue=True))
    op.create_index('ix_assignments_overdue', 'assignments',
                    ['reviewer_id', 'created', 'concern_id'], unique=False,
                    sqlite_where=sa.text('overdue IS 1'), postgresql_where=sa.text('overdue IS true'))
    op.create_index('ix_concerns_attention', 'concerns', ['created', 'id'], unique=False,
                    sqlite_where=sa.text('under_routed IS 1 OR overdue IS 1'),
                    postgresql_where=sa.text('under_routed IS true OR overdue IS true'))


def downgrade() -> None:
    op.drop_index('ix_concerns_attention', table_name='concerns')
    op.drop_index('ix_assignments_overdue', table_name='assignments')
    with op.batch_alter_table('assignments') as batch:
        batch.drop_column('overdue')
