import os

from django.core.wsgi import get_wsgi_application

from gateway import screening

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clawwits.settings")
application = get_wsgi_application()

# Screening's tables and checks are built before the first request, not during it; a master
# that preloads this module (gevent) builds them once and the workers it forks share them.
screening.warm()
