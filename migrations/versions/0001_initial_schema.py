"""Groups, aggregates, per-client counters and occurrences.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "groups",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("target_uuid", sa.String(36), nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("last_push_ns", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("name", name="uq_groups_name"),
    )
    op.create_table(
        "aggregates",
        sa.Column("id", Id, primary_key=True),
        sa.Column("group_id", Id, sa.ForeignKey("groups.id", ondelete="CASCADE"), nullable=False),
        sa.Column("aggregation_key", sa.Text, nullable=False),
        sa.Column("total_count", sa.BigInteger, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("group_id", "aggregation_key", name="uq_aggregates_group_key"),
    )
    op.create_table(
        "client_counters",
        sa.Column(
            "aggregate_id",
            Id,
            sa.ForeignKey("aggregates.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("client_uuid", sa.String(255), primary_key=True),
        sa.Column("last_total", sa.BigInteger, nullable=False),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "occurrences",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "aggregate_id",
            Id,
            sa.ForeignKey("aggregates.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("timestamp_ns", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.UniqueConstraint("aggregate_id", "uuid", name="uq_occurrences_aggregate_uuid"),
    )
    op.create_index(
        "ix_occurrences_aggregate_timestamp", "occurrences", ["aggregate_id", "timestamp_ns"]
    )


def downgrade():
    op.drop_table("occurrences")
    op.drop_table("client_counters")
    op.drop_table("aggregates")
    op.drop_table("groups")
