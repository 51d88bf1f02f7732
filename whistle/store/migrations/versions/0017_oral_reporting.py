"""oral_reporting (issue 24): intake operators, concerns filed on a reporter's behalf

- ``reviewers.is_operator``: an intake operator (never a reviewer, never routed).
- ``oral_reports``: a concern's channel, recording consent, whether the operator-issued token
  still waits for its replacement, the transcript sealed with the thread key, the agreement.
- ``transcript_corrections``: the reporter's corrections, sealed with the thread key.

Both new tables hold reporter-side rows: WITHOUT ROWID on SQLite (see 0012).

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ALTER TABLE ... ADD COLUMN: a batch copy of ``reviewers`` would drop the table
    # that sessions, assignments and keys point at (a foreign key failure with cases stored).
    op.add_column('reviewers', sa.Column('is_operator', sa.Boolean(), nullable=False,
                                         server_default=sa.false()))
    op.create_table('oral_reports',
    sa.Column('concern_id', sa.String(length=40), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('recording_consent', sa.Boolean(), nullable=False),
    sa.Column('token_pending', sa.Boolean(), nullable=False),
    sa.Column('transcript_ct', sa.LargeBinary(), nullable=False),
    sa.Column('agreed', sa.Boolean(), nullable=False),
    sa.Column('agreed_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['concern_id'], ['concerns.id'], ),
    sa.PrimaryKeyConstraint('concern_id'),
    sqlite_with_rowid=False,
    )
    op.create_table('transcript_corrections',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('concern_id', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('created', sa.Date(), nullable=False),
    sa.Column('body_ct', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['concern_id'], ['concerns.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sqlite_with_rowid=False,
    )
    with op.batch_alter_table('transcript_corrections', schema=None) as batch_op:
        batch_op.create_index('ix_transcript_corrections_concern_id', ['concern_id'],
                              unique=False)


def downgrade() -> None:
    op.drop_table('transcript_corrections')
    op.drop_table('oral_reports')
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of ``reviewers`` would
    # drop the table that sessions, assignments and keys point at.
    op.drop_column('reviewers', 'is_operator')
