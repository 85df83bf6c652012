"""Each group records when a push to it was last rejected, for /metrics.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("groups", sa.Column("last_rejected_ns", sa.BigInteger, nullable=True))


def downgrade():
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("last_rejected_ns")
