"""Each seat's rank for best available: 0 for the event's best seat (CONTRACT §8.2).

NULL for the seats of events created before: their rank is their position in the seat map.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE seats ADD COLUMN best_rank integer")


def downgrade() -> None:
    op.execute("ALTER TABLE seats DROP COLUMN best_rank")
