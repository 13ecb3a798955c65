"""Seat counts travel with each seat change: the booking service keeps each event's counts next to its change
number, moved in the transaction that moves the seats, and puts them on every seat message. The catalog keeps
the counts of the newest change it has read (seat messages of one event arrive on three topics, in no order
between them: adding their differences could pass through impossible counts on the way). Keeping the newest
needs no record of the messages applied: `processed_messages`, the catalog's only, goes.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE events ADD COLUMN seats_available integer NOT NULL DEFAULT 0,
                           ADD COLUMN seats_reserved integer NOT NULL DEFAULT 0,
                           ADD COLUMN seats_booked integer NOT NULL DEFAULT 0""")
    op.execute("""
        UPDATE events e SET seats_available = c.available, seats_reserved = c.reserved, seats_booked = c.booked
        FROM (SELECT event_id, count(*) FILTER (WHERE status = 'AVAILABLE') AS available,
                     count(*) FILTER (WHERE status = 'RESERVED') AS reserved,
                     count(*) FILTER (WHERE status = 'BOOKED') AS booked
              FROM seats GROUP BY event_id) c
        WHERE e.event_id = c.event_id""")
    op.execute("ALTER TABLE event_availability ADD COLUMN change_seq bigint NOT NULL DEFAULT 0")
    op.execute("""
        UPDATE event_availability a SET available = e.seats_available, reserved = e.seats_reserved,
                                        booked = e.seats_booked, change_seq = e.change_seq
        FROM events e WHERE e.event_id = a.event_id""")
    op.execute("DROP TABLE processed_messages")


def downgrade() -> None:
    op.execute("""
        CREATE TABLE processed_messages (
            consumer     text NOT NULL,
            message_id   uuid NOT NULL,
            processed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer, message_id)
        )""")
    op.execute("ALTER TABLE event_availability DROP COLUMN change_seq")
    op.execute("ALTER TABLE events DROP COLUMN seats_available, DROP COLUMN seats_reserved, DROP COLUMN seats_booked")
