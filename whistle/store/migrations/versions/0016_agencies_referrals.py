"""agencies_referrals (issue 23): outside agencies, referral packages, detriment check-ins

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agencies',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('age_recipient', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('id'))
    op.create_table('referral_packages',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('concern_id', sa.String(length=40), nullable=False),
    sa.Column('agency_id', sa.String(length=32), nullable=False),
    sa.Column('sha256', sa.LargeBinary(length=32), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.Column('expires', sa.Date(), nullable=False),
    sa.Column('package', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id']),
    sa.ForeignKeyConstraint(['concern_id'], ['concerns.id']),
    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_referral_packages_concern_id', 'referral_packages', ['concern_id'],
                    unique=False)
    op.create_table('checkins',
    sa.Column('concern_id', sa.String(length=40), nullable=False),
    sa.Column('answered_round', sa.Integer(), nullable=False),
    sa.Column('last_answered', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['concern_id'], ['concerns.id']),
    sa.PrimaryKeyConstraint('concern_id'))
    op.create_table('checkin_tallies',
    sa.Column('quarter', sa.String(length=8), nullable=False),
    sa.Column('answer', sa.String(length=8), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('quarter', 'answer'))


def downgrade() -> None:
    op.drop_table('checkin_tallies')
    op.drop_table('checkins')
    op.drop_index('ix_referral_packages_concern_id', table_name='referral_packages')
    op.drop_table('referral_packages')
    op.drop_table('agencies')
