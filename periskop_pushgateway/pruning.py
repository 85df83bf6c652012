"""Keeping what is stored bounded: aggregates past retention leave the export, and the oldest
hidden aggregates of a group past its maximum are deleted."""

from sqlalchemy import func, select, update

from .models import aggregates, client_counters, occurrences


def hide(connection, aggregate_ids):
    """Take aggregates out of the export. Their counts stay, and so do their occurrences: a
    client re-pushing the same cumulative state must not bring a resolved error back, and
    only known uuids tell that it is the same."""
    connection.execute(
        update(aggregates).where(aggregates.c.id.in_(aggregate_ids)).values(hidden=True)
    )


def evict_hidden(connection, keep):
    """Delete the oldest hidden aggregates of each group beyond `keep` of them.

    A deleted key that comes back starts counting from zero: the one case where an exported
    count can go down for a standing target_uuid, and only for keys hidden longest in a group
    that holds its maximum of keys.
    """
    ranked = (
        select(
            aggregates.c.id,
            func.row_number()
            .over(partition_by=aggregates.c.group_id, order_by=aggregates.c.last_seen_ns.desc())
            .label("rank"),
        )
        .where(aggregates.c.hidden.is_(True))
        .subquery()
    )
    doomed = [row.id for row in connection.execute(select(ranked.c.id).where(ranked.c.rank > keep))]
    if doomed:
        connection.execute(occurrences.delete().where(occurrences.c.aggregate_id.in_(doomed)))
        connection.execute(
            client_counters.delete().where(client_counters.c.aggregate_id.in_(doomed))
        )
        connection.execute(aggregates.delete().where(aggregates.c.id.in_(doomed)))
    return len(doomed)
