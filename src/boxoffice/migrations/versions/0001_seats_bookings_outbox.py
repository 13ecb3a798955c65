"""Events, seats, bookings, requests, outbox, availability counts, heartbeats.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE events (
    event_id    text PRIMARY KEY,
    name        text NOT NULL,
    venue_name  text NOT NULL,
    venue_city  text NOT NULL DEFAULT '',
    starts_at   timestamptz NOT NULL,
    currency    char(3) NOT NULL DEFAULT 'USD',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE price_categories (
    event_id    text NOT NULL REFERENCES events,
    category_id text NOT NULL,
    name        text NOT NULL,
    price       numeric(10, 2) NOT NULL CHECK (price >= 0),
    PRIMARY KEY (event_id, category_id)
);

CREATE TABLE seats (
    event_id    text NOT NULL REFERENCES events,
    seat_id     text NOT NULL,
    section     text NOT NULL,
    row_label   text NOT NULL,
    seat_number integer NOT NULL,
    category_id text NOT NULL,
    price       numeric(10, 2) NOT NULL CHECK (price >= 0),
    position    integer NOT NULL,
    status      text NOT NULL DEFAULT 'AVAILABLE' CHECK (status IN ('AVAILABLE', 'RESERVED', 'BOOKED')),
    booking_id  uuid,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, seat_id),
    FOREIGN KEY (event_id, category_id) REFERENCES price_categories,
    CONSTRAINT seat_owner_matches_status CHECK ((status = 'AVAILABLE') = (booking_id IS NULL))
);

CREATE TABLE bookings (
    booking_id  uuid PRIMARY KEY,
    request_id  text NOT NULL UNIQUE,
    event_id    text NOT NULL REFERENCES events,
    user_id     text NOT NULL,
    status      text NOT NULL
                CHECK (status IN ('pending', 'paying', 'confirmed', 'cancelled', 'expired', 'payment_failed')),
    seat_ids    text[] NOT NULL,
    amount      numeric(10, 2) NOT NULL,
    currency    char(3) NOT NULL,
    expires_at  timestamptz NOT NULL,
    payment_id  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bookings_by_user ON bookings (user_id, created_at);
CREATE INDEX bookings_pending_by_deadline ON bookings (expires_at) WHERE status = 'pending';

-- One row per seat of a booking; "live" while the booking owns the seat.
-- The partial unique index is what makes a double hold impossible, whatever the code does.
CREATE TABLE booking_seats (
    booking_id  uuid NOT NULL REFERENCES bookings,
    event_id    text NOT NULL,
    seat_id     text NOT NULL,
    live        boolean NOT NULL DEFAULT true,
    PRIMARY KEY (booking_id, seat_id),
    FOREIGN KEY (event_id, seat_id) REFERENCES seats
);
CREATE UNIQUE INDEX one_live_booking_per_seat ON booking_seats (event_id, seat_id) WHERE live;

-- Every decided reservation request, so that a redelivery gets the same outcome.
CREATE TABLE booking_requests (
    request_id    text PRIMARY KEY,
    event_id      text NOT NULL,
    body_hash     text NOT NULL DEFAULT '',
    http_status   integer NOT NULL,
    result        jsonb NOT NULL,
    outcome_topic text NOT NULL,
    outcome       bytea NOT NULL,
    decided_at    timestamptz NOT NULL DEFAULT now()
);

-- Transactional outbox: written with the state change, published after commit, deleted once acknowledged.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    key         bytea NOT NULL,
    payload     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The catalog's read model of live availability, kept from the seat events.
CREATE TABLE event_availability (
    event_id    text PRIMARY KEY REFERENCES events,
    total       integer NOT NULL,
    available   integer NOT NULL CHECK (available >= 0),
    reserved    integer NOT NULL CHECK (reserved >= 0),
    booked      integer NOT NULL CHECK (booked >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (available + reserved + booked = total)
);

-- Idempotent consumers: a message id is applied once per consumer, in the same transaction as its effect.
CREATE TABLE processed_messages (
    consumer     text NOT NULL,
    message_id   uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

CREATE TABLE service_heartbeats (
    service     text NOT NULL,
    instance    text NOT NULL,
    pid         integer NOT NULL,
    started_at  timestamptz NOT NULL,
    beat_at     timestamptz NOT NULL,
    info        jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (service, instance)
);

CREATE TABLE platform_secrets (
    name  text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO platform_secrets (name, value)
    VALUES ('request_id_key', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));
"""


def upgrade() -> None:
    # asyncpg prepares each statement: run them one at a time.
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("""
        DROP TABLE platform_secrets, service_heartbeats, processed_messages, event_availability, outbox,
                   booking_requests, booking_seats, bookings, seats, price_categories, events
    """)
