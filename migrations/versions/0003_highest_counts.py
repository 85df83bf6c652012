"""Per-process counters keep the highest count seen, under a fixed-size process id.

client_counters (the last count, under the pushed target_uuid) becomes process_counters: the
highest count, under a 64-bit digest of the target_uuid, with the group it belongs to so that
each group's counters can be bounded. A stored last count is taken as the highest: it is the
best this database knows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_CHUNK = 10_000


def process_id(target_uuid):
    # The same digest as periskop_pushgateway.storage.planning.process_id, written out here so that
    # this migration keeps meaning what it meant when later code changes.
    digest = hashlib.blake2b(target_uuid.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def upgrade():
    counters = op.create_table(
        "process_counters",
        sa.Column(
            "aggregate_id",
            Id,
            sa.ForeignKey("aggregates.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("process_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("group_id", Id, sa.ForeignKey("groups.id", ondelete="CASCADE"), nullable=False),
        sa.Column("highest_total", sa.BigInteger, nullable=False),
        sa.Column("pushed_ns", sa.BigInteger, nullable=False),
    )
    connection = op.get_bind()
    old = sa.table(
        "client_counters",
        sa.column("aggregate_id"),
        sa.column("client_uuid"),
        sa.column("last_total"),
        sa.column("updated_ns"),
    )
    aggregates = sa.table("aggregates", sa.column("id"), sa.column("group_id"))
    rows = connection.execute(
        sa.select(
            old.c.aggregate_id,
            old.c.client_uuid,
            old.c.last_total,
            old.c.updated_ns,
            aggregates.c.group_id,
        )
        .join(aggregates, aggregates.c.id == old.c.aggregate_id)
        .order_by(old.c.aggregate_id)
        # Read in chunks: the table may hold millions of rows.
        .execution_options(yield_per=_CHUNK)
    )
    batch = []
    one_aggregate = {}  # process id -> row, for the aggregate being read
    for aggregate_id, client_uuid, last_total, updated_ns, group_id in rows:
        if one_aggregate and aggregate_id != next(iter(one_aggregate.values()))["aggregate_id"]:
            batch.extend(one_aggregate.values())
            one_aggregate = {}
            if len(batch) >= _CHUNK:
                connection.execute(counters.insert(), batch)
                batch = []
        key = process_id(client_uuid)
        if key in one_aggregate:  # two uuids of one digest: keep the higher count
            last_total = max(last_total, one_aggregate[key]["highest_total"])
        one_aggregate[key] = {
            "aggregate_id": aggregate_id,
            "process_id": key,
            "group_id": group_id,
            "highest_total": last_total,
            "pushed_ns": updated_ns,
        }
    batch.extend(one_aggregate.values())
    if batch:
        connection.execute(counters.insert(), batch)
    op.create_index(
        "ix_process_counters_group_pushed", "process_counters", ["group_id", "pushed_ns"]
    )
    op.drop_index("ix_client_counters_updated", "client_counters")
    op.drop_table("client_counters")


def downgrade():
    # The target_uuids cannot be recovered from their digests: the counters are dropped, and
    # a process that pushes again after a downgrade is counted whole once more.
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
    op.create_index("ix_client_counters_updated", "client_counters", ["updated_ns"])
    op.drop_index("ix_process_counters_group_pushed", "process_counters")
    op.drop_table("process_counters")
