"""Gunicorn settings, from the environment (see README's configuration table)."""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_WORKERS", "2"))
worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
threads = int(os.environ.get("WEB_THREADS", "16"))
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "1000"))
timeout = int(os.environ.get("WEB_TIMEOUT", "0")) or 600
graceful_timeout = 30
keepalive = 5
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"
# Request headers can carry API keys: the access log format never includes them.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
