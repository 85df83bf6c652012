"""The `periskop-pushgateway` command: serve the gateway, or upgrade its database."""

import os
import sys
from collections.abc import Sequence
from typing import Any

import click
from flask import Flask
from gunicorn.app.base import BaseApplication
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.security import generate_password_hash

from . import __version__
from .config import load_config, retired_settings
from .config_check import effective_settings, unknown_variables
from .metrics import MULTIPROC_ENV, prepare_multiprocess_dir
from .server.gunicorn_settings import (
    DEFAULT_BIND,
    DEFAULT_THREADS,
    DEFAULT_TIMEOUT,
    default_workers,
    gunicorn_settings,
)
from .services.periskop_config import DEFAULT_SERVICE_NAME, periskop_services
from .storage.engines import database_url, open_database
from .storage.migrate import upgrade_database
from .storage.models import groups


class GatewayServer(BaseApplication):
    """gunicorn running create_app(), configured from the command line."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    # Flask's WSGI types take a dict environ, the stubs' gunicorn app a MutableMapping.
    def load(self) -> Flask:  # type: ignore[override]
        from .app import create_app

        return create_app()


@click.group()
@click.version_option(__version__)
def main() -> None:
    """Push gateway for Periskop. Settings come from PERISKOP_PUSHGATEWAY_* variables."""


@main.command()
@click.option(
    "--bind",
    "-b",
    default=(DEFAULT_BIND,),
    show_default=True,
    multiple=True,
    help="Address to listen on (host:port or unix:PATH); may be repeated.",
)
@click.option(
    "--workers",
    "-w",
    default=default_workers,
    show_default="2 to 4, by CPU count",
    type=click.IntRange(min=1),
    help="Number of gunicorn worker processes.",
)
@click.option(
    "--threads",
    default=DEFAULT_THREADS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Threads per worker; above 1, gunicorn's gthread workers, whose pushes waiting "
    "together share one commit.",
)
@click.option(
    "--timeout",
    default=DEFAULT_TIMEOUT,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seconds before a silent worker is killed and restarted.",
)
def serve(bind: tuple[str, ...], workers: int, threads: int, timeout: int) -> None:
    """Serve the gateway with gunicorn."""
    if MULTIPROC_ENV not in os.environ:
        # prometheus_client chose in-memory metrics when this process imported the gateway:
        # start afresh with a directory the workers share, so /metrics adds them all up.
        prepare_multiprocess_dir()
        options = [f"--bind={address}" for address in bind]
        options += [f"--workers={workers}", f"--threads={threads}", f"--timeout={timeout}"]
        os.execv(sys.executable, [sys.executable, "-m", __package__, "serve", *options])
    prepare_multiprocess_dir()
    GatewayServer(gunicorn_settings(bind, workers, timeout, threads)).run()


@main.command("upgrade-db")
def upgrade_db() -> None:
    """Create the database, or bring its schema up to date."""
    revision = upgrade_database(open_database(load_config()))
    click.echo(f"database schema at revision {revision}")


@main.command("hash-password")
@click.password_option(help="The password; asked for (twice) when not given.")
def hash_password(password: str) -> None:
    """Print the hash of a password, for a PERISKOP_PUSHGATEWAY_*_PASSWORD_HASH setting."""
    click.echo(generate_password_hash(password))


@main.command()
def prune() -> None:
    """Prune once now (retention, counter cap, key cap): for cron, when pushes are rare."""
    from .app import create_app

    pruned = create_app().extensions["periskop_pushgateway"].housekeeping.run()
    click.echo(" ".join(f"{name}={count}" for name, count in pruned.items()))


@main.command("config")
def show_config() -> None:
    """Print every setting in force and where it came from (default or environment), secrets
    as set or unset; exit 1 for a value the gateway would refuse at start."""
    shown, errors = effective_settings(os.environ)
    for setting in shown:
        click.echo(f"{setting.variable}={setting.shown}  # {setting.source}")
    for variable, why in retired_settings():
        click.echo(f"warning: {variable} is set but no longer used: {why}", err=True)
    for variable in unknown_variables(os.environ):
        click.echo(f"warning: {variable} is no setting of the gateway; it is ignored", err=True)
    if errors:
        click.echo("invalid configuration, the gateway would not start:", err=True)
        for error in errors:
            click.echo(f"  {error}", err=True)
        sys.exit(1)


@main.command("periskop-config")
@click.option(
    "--address",
    required=True,
    help="HOST:PORT the Periskop server scrapes: the load balancer's, not each instance's.",
)
@click.option(
    "--refresh-interval", default="30s", show_default=True, help="How often Periskop scrapes."
)
@click.option(
    "--default-name",
    default=DEFAULT_SERVICE_NAME,
    show_default=True,
    help="The Periskop service name of the default group (the ungrouped endpoints).",
)
def periskop_config(address: str, refresh_interval: str, default_name: str) -> None:
    """Print the Periskop server's `services:` entries: the default group and every group in
    the database, each scraped at its own export."""
    try:
        text = periskop_services(address, refresh_interval, _group_names(), default_name)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    click.echo(
        f"# Periskop server services for periskop-pushgateway at {address}, one per group; "
        "paste under the Periskop config's `services:`, or use as it is.",
    )
    click.echo(text, nl=False)


def _group_names() -> Sequence[str]:
    """The names of the groups in the configured database, read without changing it."""
    config = load_config()
    url = database_url(config["DATABASE_URL"])
    # Connecting would create an empty SQLite file: a mistyped path is said so instead.
    if url.get_backend_name() == "sqlite" and not os.path.exists(url.database or ""):
        raise click.ClickException(
            f"no database at {url.database} (PERISKOP_PUSHGATEWAY_DATABASE_URL)"
        )
    engine = open_database(config).engine
    try:
        with engine.connect() as connection:
            return connection.execute(select(groups.c.name)).scalars().all()
    except SQLAlchemyError as error:
        raise click.ClickException(f"cannot read the gateway's groups: {error}") from None
    finally:
        engine.dispose()
