"""Celery app: Redis broker when REDIS_URL is set; eager in-process otherwise.

Beat runs `wits.tasks.reconcile` every RECONCILE_INTERVAL_S seconds (CELERY_BEAT_SCHEDULE).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clawwits.settings")

app = Celery("clawwits")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
