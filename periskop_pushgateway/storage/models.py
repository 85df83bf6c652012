"""The tables. The schema itself is created and changed by the Alembic migrations in migrations/.

Times are integer nanoseconds since the epoch (see timestamps.py).
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; elsewhere ids are 64-bit.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

groups = Table(
    "groups",
    metadata,
    Column("id", Id, primary_key=True),
    # "" is the default group (the ungrouped endpoints); named groups match GROUP_NAME_PATTERN.
    Column("name", String(128), nullable=False),
    # What the Periskop server sees as this group's target; it must not change while counts stand.
    Column("target_uuid", String(36), nullable=False),
    # Bumped by every push; lets a worker tell whether its rendered export is still current.
    Column("revision", BigInteger, nullable=False, default=0),
    Column("created_ns", BigInteger, nullable=False),
    # When a client's push was last accepted (to within store._GROUP_TOUCH_NS) and last
    # rejected (4xx for the push itself); the gateway's own reports are neither.
    Column("last_push_ns", BigInteger, nullable=True),
    Column("last_rejected_ns", BigInteger, nullable=True),
    # Bytes of all the group's stored occurrences (their body_bytes), kept by every write that
    # adds or deletes occurrences, so that a push checks MAX_OCCURRENCE_BYTES_PER_GROUP cheaply.
    Column("occurrence_bytes", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("name", name="uq_groups_name"),
)

aggregates = Table(
    "aggregates",
    metadata,
    Column("id", Id, primary_key=True),
    Column("group_id", Id, ForeignKey("groups.id", ondelete="CASCADE"), nullable=False),
    Column("aggregation_key", Text, nullable=False),
    # A 16-byte digest of the key (planning.key_digest), indexed in its place: a key of
    # MAX_KEY_LENGTH 4-byte characters is too large for a PostgreSQL B-tree entry.
    Column("key_digest", LargeBinary(16), nullable=False),
    Column("total_count", BigInteger, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    # When a push last added to the count or brought a new occurrence.
    Column("last_seen_ns", BigInteger, nullable=False),
    # Resolved, or past its retention: out of the export, but its count is remembered.
    Column("hidden", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("group_id", "key_digest", name="uq_aggregates_group_key_digest"),
    Index("ix_aggregates_last_seen", "last_seen_ns"),
)

# The highest cumulative total_count each pushing process reported for a key, so that a
# re-pushed or out-of-order cumulative state adds only what exceeds it. It lives as long as
# its aggregate; a group keeps at most MAX_COUNTERS_PER_GROUP of them, least recently pushed
# evicted first (pruning.py).
process_counters = Table(
    "process_counters",
    metadata,
    Column("aggregate_id", Id, ForeignKey("aggregates.id", ondelete="CASCADE"), primary_key=True),
    # A 64-bit digest of the process's target_uuid (planning.process_id): a fixed 8 bytes
    # however long the uuid a client sends.
    Column("process_id", BigInteger, primary_key=True, autoincrement=False),
    Column("group_id", Id, ForeignKey("groups.id", ondelete="CASCADE"), nullable=False),
    Column("highest_total", BigInteger, nullable=False),
    # When the process last pushed this key (kept current to within planning.COUNTER_TOUCH_NS).
    Column("pushed_ns", BigInteger, nullable=False),
    Index("ix_process_counters_group_pushed", "group_id", "pushed_ns"),
)

occurrences = Table(
    "occurrences",
    metadata,
    Column("id", Id, primary_key=True),
    Column("aggregate_id", Id, ForeignKey("aggregates.id", ondelete="CASCADE"), nullable=False),
    Column("uuid", String(36), nullable=False),
    Column("timestamp_ns", BigInteger, nullable=False),
    # The occurrence exactly as exported (JSON), so a scrape only concatenates.
    Column("body", Text, nullable=False),
    # Its size in UTF-8.
    Column("body_bytes", Integer, nullable=False, server_default="0"),
    UniqueConstraint("aggregate_id", "uuid", name="uq_occurrences_aggregate_uuid"),
    Index("ix_occurrences_aggregate_timestamp", "aggregate_id", "timestamp_ns"),
)

# Secrets the gateway draws once and keeps, so that every worker and instance shares them:
# the key signing the pages' form tokens (form_tokens.py).
secrets = Table(
    "secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
)
