"""Requests a gateway had written to Kafka and not yet seen answered when it stopped.

With the embedded broker, which keeps messages in memory only, such a request (answered 202: it waits in
Kafka for its service) existed nowhere else once the platform was stopped: `down` then `up` lost it. A
gateway that stops keeps them here; the next gateway to start writes them to Kafka again and deletes them.

Revision ID: 0021
Revises: 0020
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE gateway_unanswered (
            id          bigserial PRIMARY KEY,
            request_id  text NOT NULL,
            payload     bytea NOT NULL,
            kept_at     timestamptz NOT NULL DEFAULT now()
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE gateway_unanswered")
