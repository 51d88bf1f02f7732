"""escrow (issue 25): held concerns (matching escrow) and whom a case is about.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('held_concerns',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('match_tag', sa.LargeBinary(length=32), nullable=False),
    sa.Column('token_lookup', sa.LargeBinary(length=32), nullable=False),
    sa.Column('idempotency', sa.LargeBinary(length=32), nullable=True),
    sa.Column('created', sa.Date(), nullable=False),
    sa.Column('expires', sa.Date(), nullable=False),
    sa.Column('reporter_public', sa.LargeBinary(), nullable=False),
    sa.Column('key_by_match', sa.LargeBinary(), nullable=False),
    sa.Column('key_by_reporter', sa.LargeBinary(), nullable=False),
    sa.Column('payload_ct', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency'),
    sa.UniqueConstraint('token_lookup')
    )
    op.create_index('ix_held_concerns_match_tag', 'held_concerns', ['match_tag'], unique=False)
    op.create_table('concern_about',
    sa.Column('concern_id', sa.String(length=40), nullable=False),
    sa.Column('match_tag', sa.LargeBinary(length=32), nullable=False),
    sa.Column('about_ct', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['concern_id'], ['concerns.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('concern_id')
    )
    op.create_index('ix_concern_about_match_tag', 'concern_about', ['match_tag'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_concern_about_match_tag', table_name='concern_about')
    op.drop_table('concern_about')
    op.drop_index('ix_held_concerns_match_tag', table_name='held_concerns')
    op.drop_table('held_concerns')
