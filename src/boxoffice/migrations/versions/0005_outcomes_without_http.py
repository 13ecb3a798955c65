"""Reservation outcomes are kept as what the booking service decided; the gateway makes the HTTP answer.

Every stored row already holds its outcome message (`outcome`), from which the gateway makes the same
answer as before, so the HTTP status and body columns go.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE booking_requests DROP COLUMN http_status, DROP COLUMN result")


def downgrade() -> None:
    raise NotImplementedError("the HTTP answers are made by the gateway from `outcome`; there is no way back")
