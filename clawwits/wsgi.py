import os

from django.core.wsgi import get_wsgi_application

from clawwits import malloc
from gateway import screening

# Large requests' temporaries (screening a long prompt) reuse the heap's pages instead of
# mapping fresh ones each time (`clawwits.malloc`); set before the application loads, inherited
# by the workers a preloading master forks.
malloc.keep_freed_memory()

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clawwits.settings")
application = get_wsgi_application()

# Screening's tables and checks are built before the first request, not during it; a master
# that preloads this module (gevent) builds them once and the workers it forks share them.
screening.warm()
