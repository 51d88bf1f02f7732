"""two-person roster: account states, signed roster entries, proposals, enrolment codes

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reviewers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(length=16), nullable=False,
                                      server_default='active'))
        batch_op.add_column(sa.Column('roster_signature', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('joined', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('roster_seen', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('rotating_key', sa.LargeBinary(), nullable=True))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret_ct', sa.LargeBinary(), nullable=True))
    op.execute("UPDATE reviewers SET state = 'disabled' WHERE NOT active")
    op.execute("UPDATE reviewers SET joined = created")
    op.create_table('changes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('proposed_by', sa.String(length=40), nullable=False),
    sa.Column('proposed_at', sa.DateTime(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('decided_by', sa.String(length=40), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.create_index('ix_changes_subject', ['subject'], unique=False)
        batch_op.create_index('ix_changes_state', ['state'], unique=False)
    op.create_table('enrolment_codes',
    sa.Column('code_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('reviewer_id', sa.String(length=32), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('expires', sa.DateTime(), nullable=False),
    sa.Column('used', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['reviewer_id'], ['reviewers.id'], ),
    sa.PrimaryKeyConstraint('code_hash')
    )
    with op.batch_alter_table('enrolment_codes', schema=None) as batch_op:
        batch_op.create_index('ix_enrolment_codes_reviewer_id', ['reviewer_id'], unique=False)


def downgrade() -> None:
    op.drop_table('enrolment_codes')
    op.drop_table('changes')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('secret_ct')
    with op.batch_alter_table('reviewers', schema=None) as batch_op:
        batch_op.drop_column('rotating_key')
        batch_op.drop_column('roster_seen')
        batch_op.drop_column('joined')
        batch_op.drop_column('roster_signature')
        batch_op.drop_column('state')
