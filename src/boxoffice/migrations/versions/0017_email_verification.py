"""Confirmed email addresses (BOXOFFICE_EMAIL_VERIFICATION=on): when an account's address was confirmed, and
the mailbox it reaches (lower-cased, without a `+tag`), which confirms one account at most.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE accounts ADD COLUMN email_verified_at timestamptz, ADD COLUMN verified_mailbox text")
    op.execute("CREATE UNIQUE INDEX accounts_verified_mailbox ON accounts (verified_mailbox) "
               "WHERE verified_mailbox IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX accounts_verified_mailbox")
    op.execute("ALTER TABLE accounts DROP COLUMN verified_mailbox, DROP COLUMN email_verified_at")
