"""periskop-pushgateway: lets short-lived processes push their errors for Periskop to scrape."""

__version__ = "0.1.0"

from .app import create_app  # noqa: E402

__all__ = ["create_app", "__version__"]
