"""Events an organiser called off (CONTRACT §8.3): closed to new holds, their holds released, their tickets
refunded.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE events ADD COLUMN status text NOT NULL DEFAULT 'on_sale' "
               "CHECK (status IN ('on_sale', 'cancelled'))")
    op.execute("ALTER TABLE events ADD COLUMN cancelled_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE events DROP COLUMN cancelled_at")
    op.execute("ALTER TABLE events DROP COLUMN status")
