"""Access tokens that stop working before they expire: each account's `token_version` (every token carries the
version it was issued under; a role or password change moves it on, revoking them all) and `revoked_tokens`
(one token signed out with POST /auth/logout, kept until it would have expired anyway).

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE accounts ADD COLUMN token_version integer NOT NULL DEFAULT 0")
    op.execute("CREATE TABLE revoked_tokens (token_id text PRIMARY KEY, expires_at timestamptz NOT NULL)")
    op.execute("CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at)")


def downgrade() -> None:
    op.execute("DROP TABLE revoked_tokens")
    op.execute("ALTER TABLE accounts DROP COLUMN token_version")
