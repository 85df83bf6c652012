"""Alembic environment: runs on the connection the gateway passes in (see migrate.py), or,
for the `alembic` command line, on the database the gateway's configuration names."""

from alembic import context

from periskop_pushgateway.storage.models import metadata

config = context.config


def run_on(connection):
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_on(connection)
else:
    from periskop_pushgateway.config import load_config
    from periskop_pushgateway.storage.engines import open_database

    write_engine = open_database(load_config()).write_engine
    with write_engine.connect() as own_connection:
        run_on(own_connection)
