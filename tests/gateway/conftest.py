"""Gateway fixtures: a real fake upstream on 127.0.0.1, providers and models pointing at it,
and the official SDKs pointed at the gateway's live server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

import anthropic
import openai
import pytest

from tests.fakes.upstream import FakeUpstream, closed_port

UPSTREAM_KEY = "upstream-secret-key-123"


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FakeUpstream]:
    server = FakeUpstream(api_key=UPSTREAM_KEY).start()
    yield server
    server.stop()


@pytest.fixture
def fake(upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream_server.clear()
    yield upstream_server
    upstream_server.clear()


@dataclass(frozen=True)
class Catalogue:
    chat_openai: str = "gpt-fake"
    chat_anthropic: str = "claude-fake"
    failover: str = "failover-fake"
    embed: str = "embed-fake"
    local_chat: str = "sandbox-local"
    local_embed: str = "embed-local"


def _provider(name: str, kind: str, base_url: str, *, timeout: float = 5.0):
    from gateway.models import Provider

    return Provider.objects.create(
        name=name,
        kind=kind,
        base_url=base_url,
        api_key_env="FAKE_UPSTREAM_KEY" if kind != "local" else "",
        timeout_s=timeout,
        connect_timeout_s=1.0,
    )


def _model(
    name: str,
    kind: str,
    routes: list,
    *,
    input_price="1",
    output_price="2",
    cache_read="0.5",
    max_output=1000,
    auto_rank=None,
):
    from gateway.models import AiModel, Route

    model = AiModel.objects.create(
        name=name,
        kind=kind,
        input_price=Decimal(input_price),
        output_price=Decimal(output_price),
        cache_read_price=Decimal(cache_read),
        max_output_tokens=max_output,
        auto_rank=auto_rank,
    )
    for position, (provider, upstream_model) in enumerate(routes):
        Route.objects.create(
            model=model, provider=provider, upstream_model=upstream_model, position=position
        )
    return model


@pytest.fixture
def catalogue(fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch, settings) -> Catalogue:
    """Models priced 1 Wit/input token, 2 Wits/output token, 0.5 per cached token."""
    from gateway import breaker, catalog

    monkeypatch.setenv("FAKE_UPSTREAM_KEY", UPSTREAM_KEY)
    settings.GATEWAY_CONFIG_TTL_S = 60
    openai_p = _provider("fake-openai", "openai", fake.base_url + "/v1")
    anthropic_p = _provider("fake-anthropic", "anthropic", fake.base_url)
    dead_p = _provider("dead", "openai", f"http://127.0.0.1:{closed_port()}/v1")
    local_p = _provider("local-test", "local", "")
    names = Catalogue()
    _model(names.chat_openai, "chat", [(openai_p, "fake-gpt")], auto_rank=1)
    _model(names.chat_anthropic, "chat", [(anthropic_p, "fake-claude")])
    _model(names.failover, "chat", [(dead_p, "fake-gpt"), (openai_p, "fake-gpt")])
    _model(names.embed, "embedding", [(openai_p, "fake-embed")], output_price="0", auto_rank=1)
    _model(names.local_chat, "chat", [(local_p, "clawwits-sandbox")])
    _model(names.local_embed, "embedding", [(local_p, "clawwits-embed")], output_price="0")
    catalog.invalidate()
    breaker.get().reset()
    yield names
    catalog.invalidate()
    breaker.get().reset()


@pytest.fixture
def account(make_user, make_api_key):
    """A max-tier account (rate limits out of the way) holding 1,000,000 Wits, and a key."""

    @dataclass(frozen=True)
    class Account:
        user: object
        key: str

    user = make_user(tier="max", wits=1_000_000)
    return Account(user=user, key=make_api_key(user, "ai,data"))


@pytest.fixture
def oai(live_server, account) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=live_server.url + "/v1", api_key=account.key, max_retries=0, timeout=20
    )


@pytest.fixture
def claude(live_server, account) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=live_server.url, api_key=account.key, max_retries=0, timeout=20
    )


@pytest.fixture
def redis_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rate limiter pointed at a closed port: every /v1 call meets Redis unreachable."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from clawwits import api
    from gateway import ratelimit

    # The same fail-fast timeouts and retry policy as clawwits/redisclient.py.
    unreachable = redis.Redis(
        host="127.0.0.1",
        port=closed_port(),
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        retry=Retry(NoBackoff(), 1),
    )
    monkeypatch.setattr(api, "_limiter", ratelimit.RedisLimiter(unreachable))


@dataclass
class TokenCounting:
    """What `local.count_tokens` was given while counted: each call's length in characters;
    `count` is the real function (calls to it are not counted)."""

    lengths: list[int]
    count: Callable[[str], int]


@pytest.fixture
def token_counting(monkeypatch: pytest.MonkeyPatch) -> TokenCounting:
    from gateway.providers import local

    seen = TokenCounting(lengths=[], count=local.count_tokens)

    def counting(text: str) -> int:
        seen.lengths.append(len(text))
        return seen.count(text)

    monkeypatch.setattr(local, "count_tokens", counting)
    return seen
