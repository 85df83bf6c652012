"""Secrets the gateway keeps for itself, shared by all its workers and instances.

The pages' forms carry tokens signed with one (form_tokens.py): a key drawn at random by one
process would not verify in another worker, nor on another instance on the same database.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
    )


def downgrade():
    op.drop_table("secrets")
