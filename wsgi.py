"""Entry point for flask, gunicorn and tests: ``app = create_app()``."""

from scheduler import create_app

app = create_app()
