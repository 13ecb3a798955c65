"""Refunds (CONTRACT §8.3): a confirmed booking given back is `refunding` while the provider is asked, then
`refunded` (its seats AVAILABLE again) or `confirmed` again if the refund failed. One refund per booking,
ever: the refund id is the booking's, and the payment service keeps one row per refund.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

STATUSES = "('pending', 'paying', 'confirmed', 'cancelled', 'expired', 'payment_failed', 'refunding', 'refunded')"
OLD_STATUSES = "('pending', 'paying', 'confirmed', 'cancelled', 'expired', 'payment_failed')"


def upgrade() -> None:
    op.execute("ALTER TABLE bookings DROP CONSTRAINT bookings_status_check")
    op.execute(f"ALTER TABLE bookings ADD CONSTRAINT bookings_status_check CHECK (status IN {STATUSES})")
    op.execute("ALTER TABLE bookings ADD COLUMN refund_id text")
    op.execute("""
        CREATE TABLE refunds (
            refund_id     text PRIMARY KEY,
            booking_id    uuid NOT NULL UNIQUE,
            payment_id    text NOT NULL,
            event_id      text NOT NULL,
            amount        numeric(12, 2) NOT NULL,
            currency      char(3) NOT NULL,
            provider      text NOT NULL,
            status        text NOT NULL CHECK (status IN ('refunding', 'succeeded', 'failed')),
            provider_ref  text,
            reason        text,
            created_at    timestamptz NOT NULL DEFAULT now(),
            decided_at    timestamptz
        )""")
    op.execute("""
        CREATE TABLE simulated_provider_refunds (
            idempotency_key text PRIMARY KEY,
            amount          numeric(12, 2) NOT NULL,
            currency        char(3) NOT NULL,
            approved        boolean NOT NULL,
            reference       text NOT NULL,
            created_at      timestamptz NOT NULL DEFAULT now()
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE simulated_provider_refunds")
    op.execute("DROP TABLE refunds")
    op.execute("ALTER TABLE bookings DROP COLUMN refund_id")
    op.execute("ALTER TABLE bookings DROP CONSTRAINT bookings_status_check")
    op.execute(f"ALTER TABLE bookings ADD CONSTRAINT bookings_status_check CHECK (status IN {OLD_STATUSES})")
