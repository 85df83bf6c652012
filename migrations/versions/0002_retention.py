"""Resolved and expired aggregates, and indexes for pruning.

An aggregate leaves the export when it is resolved or its retention ends, but its row stays
(hidden) so that its count continues if the key returns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("aggregates") as batch:
        batch.add_column(sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_aggregates_last_seen", "aggregates", ["last_seen_ns"])
    op.create_index("ix_client_counters_updated", "client_counters", ["updated_ns"])


def downgrade():
    op.drop_index("ix_client_counters_updated", "client_counters")
    op.drop_index("ix_aggregates_last_seen", "aggregates")
    with op.batch_alter_table("aggregates") as batch:
        batch.drop_column("hidden")
