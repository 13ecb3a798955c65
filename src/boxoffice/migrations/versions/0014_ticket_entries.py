"""Tickets at the door: the key that signs QR payloads, and one entry per (booking, seat), ever.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE ticket_entries (
            booking_id  uuid NOT NULL,
            seat_id     text NOT NULL,
            event_id    text NOT NULL,
            used_at     timestamptz NOT NULL,
            PRIMARY KEY (booking_id, seat_id)
        )""")
    op.execute("""
        INSERT INTO platform_secrets (name, value)
        VALUES ('ticket_signing_key', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))""")


def downgrade() -> None:
    op.execute("DELETE FROM platform_secrets WHERE name = 'ticket_signing_key'")
    op.execute("DROP TABLE ticket_entries")
