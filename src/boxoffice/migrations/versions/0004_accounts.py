"""Accounts (buyers, organisers, admins) and the key that signs their access tokens.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


SCHEMA = """
CREATE TABLE accounts (
    user_id       text PRIMARY KEY,
    email         text NOT NULL,
    password_hash text NOT NULL,
    role          text NOT NULL DEFAULT 'buyer' CHECK (role IN ('buyer', 'organiser', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX accounts_email ON accounts (lower(email));
INSERT INTO platform_secrets (name, value)
VALUES ('token_signing_key', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));
"""


def upgrade() -> None:
    # asyncpg prepares each statement: run them one at a time.
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE accounts")
    op.execute("DELETE FROM platform_secrets WHERE name = 'token_signing_key'")
