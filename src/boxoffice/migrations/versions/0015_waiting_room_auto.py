"""The waiting room's "auto" admission (CONTRACT §8.1): `admit_per_minute` NULL stands for "auto" (the serving
position moves as far as keeps the admitted visitors who have not finished under a ceiling), and each visitor's
`finished_at` (their booking paid) frees their share of that ceiling before their admission runs out.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE waiting_rooms ALTER COLUMN admit_per_minute DROP NOT NULL")
    op.execute("ALTER TABLE queue_visitors ADD COLUMN finished_at timestamptz")
    # The active count reads only the few who finished.
    op.execute("CREATE INDEX queue_visitors_finished ON queue_visitors (event_id, position) "
               "WHERE finished_at IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX queue_visitors_finished")
    op.execute("ALTER TABLE queue_visitors DROP COLUMN finished_at")
    op.execute("UPDATE waiting_rooms SET admit_per_minute = 600 WHERE admit_per_minute IS NULL")
    op.execute("ALTER TABLE waiting_rooms ALTER COLUMN admit_per_minute SET NOT NULL")
