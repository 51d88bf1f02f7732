"""kept_uploads (issue 20): files kept sealed between "Review before sending" and sending

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kept_uploads',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('part', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('blob', sa.LargeBinary(), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', 'part'))
    op.create_index('ix_kept_uploads_created', 'kept_uploads', ['created'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_kept_uploads_created', table_name='kept_uploads')
    op.drop_table('kept_uploads')
