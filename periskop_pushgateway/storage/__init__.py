"""Where the error aggregates live. `store.Store` is the face the rest of the gateway calls: a
push, a scrape, resolve, wipe, status, pruning, each one transaction. `planning` works out in
memory, free of SQL, how a push changes a group; `statements` and `driver_sql` hold the SQL;
`models` the tables and `migrate` the Alembic upgrade; `export_cache` the rendered exports kept
as files the workers share. Database-specific engines are in `engines`, SQLite's own machinery
in `sqlite/`."""
