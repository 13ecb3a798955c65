"""Payments, emails sent, per-producer outbox, buyer email on bookings.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE bookings ADD COLUMN email text NOT NULL DEFAULT '';
ALTER TABLE bookings ADD COLUMN payment_requested_at timestamptz;
ALTER TABLE bookings ADD COLUMN decided_at timestamptz;
ALTER TABLE bookings ADD COLUMN end_reason text;

-- Each process relays only the outbox rows it wrote.
ALTER TABLE outbox ADD COLUMN producer text NOT NULL DEFAULT 'booking';
CREATE INDEX outbox_by_producer ON outbox (producer, id);

-- The payment service's record of each charge attempt: one per (booking, paymentId), the provider's answer kept
-- so that a redelivered request replays it instead of charging again.
CREATE TABLE payments (
    booking_id    uuid NOT NULL,
    payment_id    text NOT NULL,
    event_id      text NOT NULL,
    amount        numeric(10, 2) NOT NULL,
    currency      char(3) NOT NULL,
    card_last4    text NOT NULL DEFAULT '',
    status        text NOT NULL CHECK (status IN ('charging', 'succeeded', 'failed')),
    provider      text NOT NULL,
    provider_ref  text,
    decline_code  text,
    decline_reason text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz,
    PRIMARY KEY (booking_id, payment_id)
);

-- What the built-in simulated provider charged, keyed like a real provider's idempotency key.
CREATE TABLE simulated_provider_charges (
    idempotency_key text PRIMARY KEY,
    amount          numeric(10, 2) NOT NULL,
    currency        char(3) NOT NULL,
    approved        boolean NOT NULL,
    reference       text NOT NULL,
    decline_code    text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- One email of each kind per booking, also after redelivery.
CREATE TABLE notifications_sent (
    booking_id  uuid NOT NULL,
    kind        text NOT NULL,
    recipient   text NOT NULL,
    message_id  text NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (booking_id, kind)
)
"""


def upgrade() -> None:
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE notifications_sent, simulated_provider_charges, payments")
    op.execute("DROP INDEX outbox_by_producer")
    op.execute("ALTER TABLE outbox DROP COLUMN producer")
    op.execute("ALTER TABLE bookings DROP COLUMN email, DROP COLUMN payment_requested_at, "
               "DROP COLUMN decided_at, DROP COLUMN end_reason")
