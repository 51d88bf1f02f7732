"""identity_receipts (issue 22): a reporter's identity sealed under its own key and split
2-of-n over the assigned reviewers; identity release requests; signed receipts.

Revision ID: 0014
Revises: 0013
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_NO_ROWID: dict[str, Any] = {"sqlite_with_rowid": False}


def _case_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(['concern_id'], ['concerns.id'], ondelete='CASCADE')


def upgrade() -> None:
    op.create_table('case_identities',
    sa.Column('concern_id', sa.String(length=40), nullable=False),
    sa.Column('release', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('identity_ct', sa.LargeBinary(), nullable=False),
    sa.Column('recovery_ct', sa.LargeBinary(), nullable=False),
    sa.Column('open_ct', sa.LargeBinary(), nullable=True),
    sa.Column('approved_request', sa.String(length=32), nullable=True),
    _case_fk(),
    sa.PrimaryKeyConstraint('concern_id'),
    **_NO_ROWID
    )
    op.create_table('identity_shares',
    sa.Column('concern_id', sa.String(length=40), nullable=False),
    sa.Column('holder', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('blob', sa.LargeBinary(), nullable=False),
    _case_fk(),
    sa.PrimaryKeyConstraint('concern_id', 'holder', 'source'),
    **_NO_ROWID
    )
    op.create_table('identity_requests',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('concern_id', sa.String(length=40), nullable=False),
    sa.Column('reason_ct', sa.LargeBinary(), nullable=False),
    _case_fk(),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_identity_requests_concern_id', 'identity_requests', ['concern_id'],
                    unique=False)
    op.create_table('case_receipts',
    sa.Column('concern_id', sa.String(length=40), nullable=False),
    sa.Column('receipt_ct', sa.LargeBinary(), nullable=False),
    _case_fk(),
    sa.PrimaryKeyConstraint('concern_id'),
    **_NO_ROWID
    )


def downgrade() -> None:
    op.drop_table('case_receipts')
    op.drop_index('ix_identity_requests_concern_id', table_name='identity_requests')
    op.drop_table('identity_requests')
    op.drop_table('identity_shares')
    op.drop_table('case_identities')
