"""Aggregates are indexed by a 16-byte digest of their key, not by the key itself.

A key of MAX_KEY_LENGTH 4-byte characters is about 4 KB of UTF-8, more than a PostgreSQL
B-tree index entry holds (2,704 bytes): such a push was refused on every try. The digest has a
fixed size whatever the key.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_CHUNK = 10_000


def key_digest(aggregation_key):
    # The same digest as periskop_pushgateway.storage.planning.key_digest, written out here so that
    # this migration keeps meaning what it meant when later code changes.
    return hashlib.blake2b(aggregation_key.encode(), digest_size=16).digest()


def upgrade():
    op.add_column("aggregates", sa.Column("key_digest", sa.LargeBinary(16), nullable=True))
    connection = op.get_bind()
    table = sa.table(
        "aggregates", sa.column("id"), sa.column("aggregation_key"), sa.column("key_digest")
    )
    update = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("_id"))
        .values(key_digest=sa.bindparam("_digest"))
    )
    last_id = None
    while True:
        # By id, a chunk at a time: the table may hold many rows.
        query = sa.select(table.c.id, table.c.aggregation_key).order_by(table.c.id).limit(_CHUNK)
        if last_id is not None:
            query = query.where(table.c.id > last_id)
        rows = connection.execute(query).all()
        if not rows:
            break
        connection.execute(
            update, [{"_id": row.id, "_digest": key_digest(row.aggregation_key)} for row in rows]
        )
        last_id = rows[-1].id
    with op.batch_alter_table("aggregates") as batch:
        batch.alter_column("key_digest", existing_type=sa.LargeBinary(16), nullable=False)
        batch.drop_constraint("uq_aggregates_group_key", type_="unique")
        batch.create_unique_constraint("uq_aggregates_group_key_digest", ["group_id", "key_digest"])


def downgrade():
    with op.batch_alter_table("aggregates") as batch:
        batch.drop_constraint("uq_aggregates_group_key_digest", type_="unique")
        batch.create_unique_constraint("uq_aggregates_group_key", ["group_id", "aggregation_key"])
        batch.drop_column("key_digest")
