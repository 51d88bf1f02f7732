"""wrapped keys: drop the index on concern_id alone

The unique constraint on (concern_id, recipient_kind, recipient_id, key_kind)
already serves every lookup by case (concern_id leads it). The second index
cost each submission a random index page more to write, and space per key.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_wrapped_keys_concern_id', table_name='wrapped_keys')


def downgrade() -> None:
    op.create_index('ix_wrapped_keys_concern_id', 'wrapped_keys', ['concern_id'], unique=False)
