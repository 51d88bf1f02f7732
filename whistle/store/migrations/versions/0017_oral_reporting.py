"""oral_reporting (issue 24): placeholder, filled in by that work so parallel changes land in order.

Revision ID: 0017
Revises: 0016
"""

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
