"""The client's address for per-IP limits (login and signup), behind a known number of proxies.

With TRUSTED_PROXIES = 0 (the default) it is REMOTE_ADDR. With N > 0, each of the N proxies in
front of the app appends the address it received the request from to X-Forwarded-For, so the
N-th entry from the right is the one the first trusted proxy saw: the client. Entries further
left were written by the client and are ignored (a forged header cannot pick its own bucket).
A header with fewer entries than N (the request skipped a proxy) falls back to REMOTE_ADDR.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXIES
    if proxies <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [hop for hop in hops if hop]
    if len(hops) < proxies:
        return remote
    candidate = hops[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
