"""The account that created each event: with accounts on, only that organiser (and admins) change its on-sale,
call it off and check its tickets. Events created without an account keep none: every organiser manages them.

Revision ID: 0019
Revises: 0018
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE events ADD COLUMN organiser_id text")


def downgrade() -> None:
    op.execute("ALTER TABLE events DROP COLUMN organiser_id")
