"""Serving the app under gunicorn: its production settings, the sync worker that answers a
push only once its commit is on disk (one flush for the pushes it took in a row), large pieces
of work done one at a time, and freed memory given back to the system."""
