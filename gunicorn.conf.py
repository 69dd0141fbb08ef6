"""gunicorn settings for bin/run (gunicorn reads this file from the working directory)."""

import os

bind = f"127.0.0.1:{os.environ.get('PORT', '5000')}"
# One process with threads: the default in-memory rate-limit store is per process.
# With several processes set RATELIMIT_STORAGE_URI to a shared store (redis://...).
workers = 1
threads = int(os.environ.get("WEB_THREADS", "8"))
accesslog = "-"
# No control socket: gunicorn 27 keeps one at ~/.gunicorn/gunicorn.ctl, which a second
# instance on the same machine takes over and deletes on exit. Nothing here uses it.
control_socket_disable = True
