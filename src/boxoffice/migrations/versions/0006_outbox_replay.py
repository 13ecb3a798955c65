"""Outbox rows outlive their publication for a while, so that a broker that lost its messages gets them again.

`published_at` is NULL until Kafka has acknowledged a row; published rows are kept for the retention time
(BOXOFFICE_OUTBOX_RETAIN_SECONDS) and then deleted. `kafka_epoch` counts the starts of the embedded broker,
whose storage is memory only: a relay whose producer has not yet replayed the current epoch marks its kept
rows unpublished again (`outbox_replays`), and its sweep publishes them in their order. The sweep finds
unpublished rows through a partial index; pruning walks the primary key, so `outbox_by_producer` goes (one
index less to write for every row).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


SCHEMA = """
ALTER TABLE outbox ADD COLUMN published_at timestamptz;
CREATE INDEX outbox_pending ON outbox (producer, id) WHERE published_at IS NULL;
DROP INDEX outbox_by_producer;
CREATE TABLE kafka_epoch (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch       bigint NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO kafka_epoch (epoch) VALUES (0);
CREATE TABLE outbox_replays (
    producer    text PRIMARY KEY,
    epoch       bigint NOT NULL
)
"""


def upgrade() -> None:
    # asyncpg prepares each statement: run them one at a time.
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE outbox_replays, kafka_epoch")
    op.execute("DELETE FROM outbox WHERE published_at IS NOT NULL")
    op.execute("DROP INDEX outbox_pending")
    op.execute("CREATE INDEX outbox_by_producer ON outbox (producer, id)")
    op.execute("ALTER TABLE outbox DROP COLUMN published_at")
