"""Per-event sequence of seat changes, stamped on seat messages in the transaction that makes them.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE events ADD COLUMN change_seq bigint NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE events DROP COLUMN change_seq")
