"""A charge the provider did not decide is kept to be asked again later; the simulated provider's answer times.

While a payment is undecided after its tries (`status` still 'charging'), `retry_at` says when it is asked
again, `retries` how often it was put off, and `card` and `request_id` what asking again needs; the card is
cleared once the payment is decided. `latency_ms` is how long the simulated provider took to answer a charge,
so a benchmark can show its figures beside the platform's.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


SCHEMA = """
ALTER TABLE payments ADD COLUMN retry_at timestamptz, ADD COLUMN retries integer NOT NULL DEFAULT 0,
                     ADD COLUMN card text, ADD COLUMN request_id text;
CREATE INDEX payments_to_retry ON payments (retry_at) WHERE retry_at IS NOT NULL;
ALTER TABLE simulated_provider_charges ADD COLUMN latency_ms real
"""


def upgrade() -> None:
    # asyncpg prepares each statement: run them one at a time.
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("ALTER TABLE simulated_provider_charges DROP COLUMN latency_ms")
    op.execute("DROP INDEX payments_to_retry")
    op.execute("ALTER TABLE payments DROP COLUMN retry_at, DROP COLUMN retries, DROP COLUMN card, "
               "DROP COLUMN request_id")
