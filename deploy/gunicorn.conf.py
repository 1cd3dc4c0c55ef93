"""Gunicorn settings, from the environment (see README's configuration table)."""

import os

worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
# gevent workers share the application's loaded code: it is imported once, in the master, and
# forked (copy-on-write), instead of once per worker. gevent must patch the standard library
# before anything else imports it, so the master patches first (gunicorn's documented way to
# preload under gevent). Nothing the application imports connects to PostgreSQL or Redis
# (connections open on a worker's first request), so no socket is shared across the fork;
# `post_fork` checks it.
preload_app = worker_class == "gevent" and os.environ.get("WEB_PRELOAD", "1") == "1"
if preload_app:
    from gevent import monkey

    monkey.patch_all()

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "16"))
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "1000"))
timeout = int(os.environ.get("WEB_TIMEOUT", "0")) or 600
graceful_timeout = 30
keepalive = 5
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"
# Request headers can carry API keys: the access log format never includes them.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'


def post_fork(server: object, worker: object) -> None:
    """With the application preloaded, a database connection opened in the master would be one
    socket shared by every worker: refuse to serve rather than interleave their queries."""
    if preload_app:
        from django.db import connections

        opened = [c.alias for c in connections.all(initialized_only=True) if c.connection]
        if opened:
            raise RuntimeError(f"database connections opened before the fork: {opened}")


def pre_fork(server: object, worker: object) -> None:
    """Objects loaded so far stay out of the collector's reach: a collection in a worker would
    otherwise write to (and so copy) every page they share with the master."""
    if preload_app:
        import gc

        gc.freeze()
