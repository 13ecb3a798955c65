"""An event's own hold time: how long a hold of its seats lasts before it is released (unset: the platform's
BOXOFFICE_HOLD_SECONDS). Organisers set a checkout time to suit the sale.

Revision ID: 0022
Revises: 0021
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE events ADD COLUMN hold_seconds integer "
               "CHECK (hold_seconds BETWEEN 10 AND 86400)")


def downgrade() -> None:
    op.execute("ALTER TABLE events DROP COLUMN hold_seconds")
