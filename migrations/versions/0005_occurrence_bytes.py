"""Each occurrence records its size, and each group the size of all its occurrences.

MAX_OCCURRENCE_BYTES_PER_GROUP bounds what a group stores; the group's running total lets a
push tell whether it went past the bound without summing the group's occurrences.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "occurrences",
        sa.Column("body_bytes", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column(
        "groups",
        sa.Column("occurrence_bytes", sa.BigInteger, nullable=False, server_default="0"),
    )
    # Bytes of UTF-8, as the gateway counts them: SQLite's length() counts characters.
    connection = op.get_bind()
    if connection.dialect.name == "sqlite":
        size = "length(CAST(body AS BLOB))"
    else:
        size = "octet_length(body)"
    op.execute(f"UPDATE occurrences SET body_bytes = {size}")
    op.execute(
        "UPDATE groups SET occurrence_bytes = ("
        " SELECT coalesce(sum(o.body_bytes), 0) FROM occurrences o"
        " JOIN aggregates a ON a.id = o.aggregate_id WHERE a.group_id = groups.id)"
    )


def downgrade():
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("occurrence_bytes")
    with op.batch_alter_table("occurrences") as batch:
        batch.drop_column("body_bytes")
