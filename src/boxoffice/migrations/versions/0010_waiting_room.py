"""The waiting room in front of an on-sale (CONTRACT §8.1): each event's room, its visitors and admissions.

`queue_visitors` keeps each visitor's place in Kafka order (`join_seq`) beside the position the room gave
(the shuffle at the opening for those who came before it), so the draw can be audited afterwards;
`waiting_rooms.shuffle_digest` is the SHA-256 of that permutation as drawn. A position is given once: the
database says so.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


SCHEMA = """
CREATE TABLE waiting_rooms (
    event_id              text PRIMARY KEY REFERENCES events (event_id),
    enabled               boolean NOT NULL DEFAULT true,
    opens_at              timestamptz NOT NULL,
    admit_per_minute      integer NOT NULL CHECK (admit_per_minute > 0),
    admission_minutes     integer NOT NULL CHECK (admission_minutes > 0),
    opened_at             timestamptz,
    joined                integer NOT NULL DEFAULT 0,
    last_position         bigint NOT NULL DEFAULT 0,
    serving_position      bigint NOT NULL DEFAULT 0 CHECK (serving_position <= last_position),
    metered_from_position bigint NOT NULL DEFAULT 0,
    metered_from          timestamptz,
    pre_queue_size        integer,
    shuffle_digest        text,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE queue_visitors (
    event_id    text NOT NULL REFERENCES waiting_rooms (event_id),
    visitor_id  text NOT NULL,
    queue_token text NOT NULL UNIQUE,
    join_seq    integer NOT NULL,
    position    bigint,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, visitor_id),
    UNIQUE (event_id, join_seq),
    UNIQUE (event_id, position)
);
CREATE TABLE queue_admissions (
    event_id       text NOT NULL REFERENCES waiting_rooms (event_id),
    first_position bigint NOT NULL,
    last_position  bigint NOT NULL CHECK (last_position >= first_position),
    admitted_at    timestamptz NOT NULL,
    PRIMARY KEY (event_id, first_position)
)
"""


def upgrade() -> None:
    # asyncpg prepares each statement: run them one at a time.
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE queue_admissions, queue_visitors, waiting_rooms")
