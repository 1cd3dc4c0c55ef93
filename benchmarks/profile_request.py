"""Where one gateway request spends its CPU: the full path in-process, profiled.

    scripts/services.py --durable -- .venv/bin/python -m benchmarks.profile_request [--requests N]
        [--stream] [--html out.html] [--cprofile] [--parts] [--no-lane]

Runs N chat requests through Django's WSGI handler (no HTTP server in between, so the figures
are the gateway's own work: key auth, scope, rate limit, validation, screening, reserve,
upstream call, commit, usage record) against a fake upstream on 127.0.0.1, on the PostgreSQL and
Redis from DATABASE_URL / REDIS_URL. Prints CPU ms per request (process time, which excludes the
upstream's and the databases' own CPU) and a pyinstrument profile.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Callable


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--html", default="")
    parser.add_argument("--cprofile", action="store_true", help="CPU by package (cProfile)")
    parser.add_argument(
        "--parts", action="store_true", help="CPU of each step of the path, timed on its own"
    )
    parser.add_argument(
        "--no-lane", action="store_true", help="through the whole stack (clawwits.fastlane off)"
    )
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get(
        "REDIS_URL"
    ):
        print("run under scripts/services.py (needs DATABASE_URL and REDIS_URL)", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clawwits.settings")
    os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from pyinstrument import Profiler

    from accounts import services
    from apikeys import services as key_services
    from apikeys.scopes import Scope
    from gateway import catalog, providerfile
    from tests.fakes.upstream import FakeUpstream

    call_command("migrate", verbosity=0)
    fake = FakeUpstream(api_key="k", record=False).start()
    os.environ["PROFILE_UPSTREAM_KEY"] = "k"
    providerfile.apply(providerfile.parse(fake.catalogue("prof-model", "PROFILE_UPSTREAM_KEY")))
    catalog.invalidate()
    email = f"profile-{time.time_ns()}@example.com"
    user = services.create_account(
        email=email, password="x", tier_slug="enterprise", welcome_wits=10**12
    )
    user.rate_limit_rpm = 10**9
    user.save(update_fields=["rate_limit_rpm"])
    key = key_services.create_key(user_id=user.id, name="p", scopes=frozenset({Scope.AI}))
    body = json.dumps(
        {
            "model": "prof-model",
            "messages": [{"role": "user", "content": "Hello there, how are you today?"}],
            "max_tokens": 16,
            "stream": args.stream,
        }
    )
    # Call the WSGI application as gunicorn does (the test client adds its own overhead).
    application = WSGIHandler()
    if args.no_lane:
        application = _without_lane()
    payload = body.encode()
    environ_base = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/chat/completions",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(payload)),
        "HTTP_AUTHORIZATION": f"Bearer {key.plaintext}",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    status_seen: list[str] = []

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        status_seen.append(status)

    def through(app: WSGIHandler) -> Callable[[], None]:
        def one() -> None:
            environ = dict(environ_base, **{"wsgi.input": io.BytesIO(payload)})
            result = app(environ, start_response)
            try:
                b"".join(result)
            finally:
                result.close()
            status = status_seen.pop()
            assert status.startswith("200"), status

        return one

    one = through(application)

    for _ in range(200):
        one()
    if args.cprofile:
        return _cpu_by_package(one, args.requests, fake)
    if args.parts:
        return _cpu_by_part(
            one,
            through(_without_lane()),
            args.requests,
            fake,
            key=key.plaintext,
            user=user,
            body=payload,
        )
    profiler = Profiler(interval=0.0005)
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    profiler.start()
    for _ in range(args.requests):
        one()
    profiler.stop()
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    print(
        f"{args.requests} requests: {cpu / args.requests * 1000:.3f} ms CPU (this thread) and "
        f"{wall / args.requests * 1000:.3f} ms wall per request (profiler on)"
    )
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for _ in range(args.requests):
        one()
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    print(
        f"{args.requests} requests: {cpu / args.requests * 1000:.3f} ms CPU (this thread) and "
        f"{wall / args.requests * 1000:.3f} ms wall per request (profiler off)"
    )
    print(profiler.output_text(unicode=True, color=False, show_all=False, short_mode=False))
    if args.html:
        with open(args.html, "w") as handle:
            handle.write(profiler.output_html())
    fake.stop()
    return 0


def _without_lane():  # noqa: ANN202 - WSGIHandler
    """The WSGI application with MIDDLEWARE minus clawwits.fastlane: the whole stack and DRF."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    from clawwits import fastlane

    with override_settings(MIDDLEWARE=list(fastlane.STACK)):
        return WSGIHandler()


def _cpu_by_part(one, one_stack, requests: int, fake, *, key: str, user, body: bytes) -> int:  # noqa: ANN001
    """Each step of the path run on its own, `requests` times, without a profiler's overhead.

    The steps are the ones the full request runs, on the same key, account, body and upstream;
    "the rest" is what the full request costs beyond their sum (Django's handler, middleware,
    DRF's dispatch, building and sending the response). The same request through the whole
    stack (the fast lane off) is timed in the same run, right after, for the ratio.
    """
    import uuid

    from apikeys import services as key_services
    from clawwits import api
    from gateway import catalog, screening, upstream, validation
    from gateway.models import UsageRecord
    from gateway.providers import openai as openai_provider
    from wits import ledger

    limits = validation.Limits(max_messages=1000, max_text_chars=10**6, max_embedding_inputs=100)
    call = validation.parse_openai_chat(body, limits)
    principal = key_services.authenticate(key)[1]
    blocklist = catalog.get().blocklist
    route = catalog.get().resolve("prof-model", kind="chat").routes[0]
    url, headers = openai_provider.chat_endpoint(route.provider)
    upstream_body = {"model": "fake-gpt", "messages": call.body["messages"], "max_tokens": 16}

    def pair() -> None:
        request_id = f"req_{uuid.uuid4().hex}"
        held = ledger.reserve(user_id=user.id, request_id=request_id, amount=100, model="m")
        record = UsageRecord(
            user_id=user.id, api_key_id=principal.key_id, request_id=request_id,
            endpoint="chat", model="m", provider="fake", stream=False, cached=False,
            prompt_tokens=10, completion_tokens=5, cache_read_tokens=0, reserved=100, wits=60,
            ttft_ms=1, latency_ms=2, status=200, error_code="", settle_reason="completed",
            screening="pass",
        )  # fmt: skip
        ledger.commit(held, actual=60, attach=[record])

    def rate() -> None:
        api.limiter().hit(
            account=str(principal.user_id), account_limit=10**9,
            key=str(principal.key_id), key_limit=None, guards=(),
        )  # fmt: skip

    from gateway import relay

    def relay_only() -> None:
        relay.chat(
            relay.Caller.new(user_id=principal.user_id, key_id=principal.key_id),
            validation.parse_openai_chat(body, limits),
            endpoint="chat",
        )

    parts = {
        "key auth (cached)": lambda: key_services.authenticate(key),
        "rate limit (1 Redis call)": rate,
        "parse + validate body": lambda: validation.parse_openai_chat(body, limits),
        "screening": lambda: screening.screen(call.texts, blocklist=blocklist),
        "reserve + commit with usage record (2 SQL)": pair,
        "upstream call (pooled HTTP)": lambda: upstream.post_json(
            url, headers=headers, body=upstream_body, connect_timeout=5, read_timeout=30
        ),
    }
    costs: dict[str, float] = {}
    for name, step in [*parts.items(), ("relay.chat alone", relay_only)]:
        for _ in range(min(200, requests)):
            step()
        cpu0 = time.thread_time()
        for _ in range(requests):
            step()
        costs[name] = (time.thread_time() - cpu0) / requests * 1000
    # The lane and the whole stack in alternating blocks: the tables grow and the machine's load
    # drifts during a run, and both should see the same of it.
    rounds = 8
    spent = {"full request": 0.0, "full request, lane off": 0.0}
    for _ in range(min(200, requests)):
        one()
        one_stack()
    for _ in range(rounds):
        for name, step in (("full request", one), ("full request, lane off", one_stack)):
            cpu0 = time.thread_time()
            for _ in range(requests // rounds):
                step()
            spent[name] += time.thread_time() - cpu0
    for name, seconds in spent.items():
        costs[name] = seconds / (requests // rounds * rounds) * 1000
    full = costs.pop("full request")
    stack = costs.pop("full request, lane off")
    relay_alone = costs.pop("relay.chat alone")
    print(f"CPU ms per request, each step timed alone over {requests} runs:")
    for name, ms in costs.items():
        print(f"  {name:<44} {ms:7.3f}  {ms / full:6.1%}")
    rest = full - sum(costs.values())
    label = "the rest (handler, middleware, DRF, response)"
    print(f"  {label:<44} {rest:7.3f}  {rest / full:6.1%}")
    print(f"  {'full request':<44} {full:7.3f}")
    print(f"  {'(relay.chat alone, no handler or DRF)':<44} {relay_alone:7.3f}")
    label = "(full request, fast lane off: whole stack)"
    print(f"  {label:<44} {stack:7.3f}  lane/stack = {full / stack:.3f} (interleaved)")
    print(
        "A step run alone in a loop runs warmer (caches, specialised bytecode) than inside the\n"
        "full path, so the parts are lower bounds and 'the rest' an upper bound."
    )
    fake.stop()
    return 0


def _cpu_by_package(one, requests: int, fake) -> int:  # noqa: ANN001
    import collections
    import cProfile
    import pstats

    profile = cProfile.Profile(time.thread_time)
    profile.enable()
    for _ in range(requests):
        one()
    profile.disable()
    stats = pstats.Stats(profile)
    by_package: collections.Counter[str] = collections.Counter()
    for (path, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        if "site-packages/" in path:
            package = path.split("site-packages/")[1].split("/")[0]
        elif "/work/" in path:
            package = "clawwits:" + path.split("/")[3]
        elif path.startswith("~") or path.startswith("<"):
            package = "builtins"
        else:
            package = "stdlib:" + path.rsplit("/", 1)[-1]
        by_package[package] += tottime
    total = sum(by_package.values())
    print(f"own CPU by package, ms per request (total {total / requests * 1000:.2f}):")
    for package, seconds in by_package.most_common(25):
        print(f"  {package:32s} {seconds / requests * 1000:7.3f}")
    stats.sort_stats("cumulative").print_stats(
        "django|rest_framework|requests|gateway|wits|apikeys|clawwits", 60
    )
    stats.sort_stats("tottime").print_stats(45)
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
