"""The WSGI entry point: `gunicorn wsgi:app`."""

from periskop_pushgateway import create_app

app = create_app()
