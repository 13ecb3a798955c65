"""The request that created each event: the gateway answers 201 to that request alone, and 409 event_exists
to every other request for the same new event id, however close together they came.

Revision ID: 0018
Revises: 0017
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE events ADD COLUMN creation_request text")


def downgrade() -> None:
    op.execute("ALTER TABLE events DROP COLUMN creation_request")
