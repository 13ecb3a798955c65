"""The waiting list of a sold-out event (CONTRACT §8.3): entries in the order they joined, and the offers
the booking service makes them from released seats.

`events.waitlist_seq` numbers an event's entries 1, 2, 3, ... in the order the booking service took them.
An entry is `waiting`, then `offered` (a pending booking holds seats for it), or ends `expired` (its offer ran
out or its payment failed) or `left`. One waiting entry per buyer and event.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE events ADD COLUMN waitlist_seq bigint NOT NULL DEFAULT 0;
CREATE TABLE waitlist (
    waitlist_id uuid PRIMARY KEY,
    request_id  text NOT NULL UNIQUE,
    event_id    text NOT NULL REFERENCES events,
    user_id     text NOT NULL,
    email       text NOT NULL DEFAULT '',
    quantity    integer NOT NULL CHECK (quantity BETWEEN 1 AND 200),
    position    bigint NOT NULL,
    status      text NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'offered', 'expired', 'left')),
    booking_id  uuid REFERENCES bookings,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, position),
    CONSTRAINT offer_has_booking CHECK ((status = 'offered') <= (booking_id IS NOT NULL))
);
CREATE INDEX waitlist_waiting ON waitlist (event_id, position) WHERE status = 'waiting';
CREATE UNIQUE INDEX one_waiting_entry_per_buyer ON waitlist (event_id, user_id) WHERE status = 'waiting';
CREATE INDEX waitlist_by_booking ON waitlist (booking_id) WHERE booking_id IS NOT NULL;
"""


def upgrade() -> None:
    # asyncpg prepares each statement: run them one at a time.
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE waitlist")
    op.execute("ALTER TABLE events DROP COLUMN waitlist_seq")
