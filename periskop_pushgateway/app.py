"""The application factory."""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import load_config, retired_settings
from .config_check import check_config
from .errors import register_error_handlers
from .log_format import formatter
from .server.malloc_tuning import return_freed_memory
from .services.housekeeping import Housekeeping
from .services.push_cache import PushCache
from .storage.engines import open_database
from .storage.export_cache import ExportFileCache
from .storage.migrate import check_database_current, upgrade_database
from .storage.store import Store, StoreSettings
from .web.auth import admin_api_off, credentials_from_config, install_auth
from .web.views import (
    AggregationKeyConverter,
    GroupNameConverter,
    KeyDigestConverter,
    admin,
    export,
    health,
    openapi,
    page_actions,
    pages,
    probes,
    push,
)
from .web.views import metrics as metrics_view
from .wire.occurrence_cache import OccurrenceCache
from .wire.schemas import Limits, build_push_loader
from .wire.scrub.scrubber import Scrubber

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gateway:
    """What the views need, built once per app."""

    store: Store
    housekeeping: Housekeeping
    load_push: Callable[[dict], dict]
    scrubber: Scrubber
    # Pushes this worker accepted lately, by body (see push_cache.py).
    push_cache: PushCache = field(default_factory=PushCache)


def create_app(config_overrides: dict[str, Any] | None = None) -> Flask:
    """Build the gateway from PERISKOP_PUSHGATEWAY_* settings (overrides win, for tests)."""
    config = load_config(overrides=config_overrides)
    check_config(config)
    _configure_logging(config["LOG_LEVEL"], config["LOG_FORMAT"])
    for variable, why in retired_settings():
        log.warning("%s is set but no longer used: %s", variable, why)

    app = Flask(__name__)
    app.config.update(config)
    # Flask rejects larger bodies with 413 before the push is read.
    app.config["MAX_CONTENT_LENGTH"] = config["MAX_BODY_BYTES"]

    database = open_database(config)
    if config["AUTO_MIGRATE"]:
        upgrade_database(database)
    else:
        check_database_current(database.engine)
    # Connections opened for the migration are not handed to forked workers.
    database.engine.dispose()
    scrubber = Scrubber.from_config(config)
    store = Store(database, StoreSettings.from_config(config), ExportFileCache.from_config(config))
    app.extensions["periskop_pushgateway"] = Gateway(
        store=store,
        housekeeping=Housekeeping(store, config["PRUNE_INTERVAL_SECONDS"] * 10**9),
        load_push=build_push_loader(Limits.from_config(config), scrubber, OccurrenceCache()),
        scrubber=scrubber,
    )

    if config["PROXY_HOPS"]:
        hops = config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )

    app.url_map.converters["group"] = GroupNameConverter
    app.url_map.converters["key"] = AggregationKeyConverter
    app.url_map.converters["digest"] = KeyDigestConverter
    for view in (push, export, health, probes, admin, metrics_view, openapi, pages, page_actions):
        app.register_blueprint(view.blueprint)
    install_auth(
        app,
        credentials_from_config(config),
        admin_api_off(config),
        failures_per_minute=config["AUTH_FAILURES_PER_MINUTE"],
        checks_per_second=config["AUTH_CHECKS_PER_SECOND"],
    )
    register_error_handlers(app)
    # After the view has returned, so that what its large work made is freed by then.
    app.teardown_request(_return_freed_memory)
    _compile_templates(app)
    return app


def _return_freed_memory(_error: BaseException | None) -> None:
    return_freed_memory()


def _compile_templates(app: Flask) -> None:
    """Compile the pages' templates now: under gunicorn's preload, in the master before the
    workers fork, so their compiled code is shared rather than built again in each worker
    on its first page."""
    for name in app.jinja_env.list_templates():
        app.jinja_env.get_template(name)


def _configure_logging(level: str, log_format: str) -> None:
    logger = logging.getLogger("periskop_pushgateway")
    logger.setLevel(level.upper())
    # Under gunicorn with JSON logs, the root logger has gunicorn's JSON handler already.
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(formatter(log_format))
        logger.addHandler(handler)
