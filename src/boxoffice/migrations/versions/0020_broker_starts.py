"""The embedded broker's starts, counted as soon as it listens (`kafka_epoch.broker_starts`).

`epoch` is counted once the new broker's topics have settled, a few seconds after its start, and tells
producers to publish what they kept again. Consumers and the gateway compare the starts instead: a service
started in those few seconds has already read the new broker, and used to read every partition again from
its start (and the gateway to write its unanswered requests again) when the epoch caught up.

Revision ID: 0020
Revises: 0019
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE kafka_epoch ADD COLUMN broker_starts bigint NOT NULL DEFAULT 0")
    op.execute("UPDATE kafka_epoch SET broker_starts = epoch")


def downgrade() -> None:
    op.execute("ALTER TABLE kafka_epoch DROP COLUMN broker_starts")
