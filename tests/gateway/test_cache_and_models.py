"""The response cache, /v1/models, auto-routing and loadproviders."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from gateway import catalog
from gateway.models import AiModel, Provider, Route
from wits import ledger, pricing

pytestmark = pytest.mark.django_db(transaction=True)


def test_deterministic_request_is_served_from_cache_at_the_cache_price(
    oai, account, catalogue, fake
):
    args = dict(
        model=catalogue.chat_openai,
        messages=[{"role": "user", "content": "cache this answer"}],
        temperature=0,
        max_tokens=8,
    )
    first = oai.chat.completions.create(**args)
    second = oai.chat.completions.create(**args)

    assert len(fake.requests) == 1
    assert first.model_extra["x_clawwits"]["cached"] is False
    assert second.model_extra["x_clawwits"]["cached"] is True
    assert second.choices[0].message.content == first.choices[0].message.content
    full = 3 + 8 * 2
    cached = pricing.cache_hit_charge(
        pricing.Price(*(catalog.get().models[catalogue.chat_openai].price.__dict__.values())),
        pricing.Usage(3, 8),
    )
    assert second.model_extra["x_clawwits"]["wits"] == cached
    assert cached < full
    assert ledger.balance(user_id=account.user.id).lifetime_used == full + cached


def test_non_deterministic_requests_are_never_cached(oai, catalogue, fake):
    for _ in range(2):
        oai.chat.completions.create(
            model=catalogue.chat_openai, messages=[{"role": "user", "content": "x"}], temperature=1
        )
    assert len(fake.requests) == 2


def test_models_list_in_both_formats(oai, claude, catalogue):
    ids = [m.id for m in oai.models.list()]
    assert catalogue.chat_openai in ids
    assert catalogue.embed in ids
    anthropic_ids = [m.id for m in claude.models.list()]
    assert anthropic_ids == sorted(ids, key=lambda n: (catalog.get().models[n].kind, n))


def test_auto_routes_to_the_lowest_ranked_chat_model(oai, catalogue, fake):
    resp = oai.chat.completions.create(messages=[{"role": "user", "content": "hi"}], model="auto")
    assert resp.model_extra["x_clawwits"]["provider"] == "fake-openai"
    assert fake.requests[-1].body["model"] == "fake-gpt"


PROVIDERS = """
[[providers]]
name = "p-openai"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "P_KEY"
timeout_s = 12

[[providers]]
name = "p-local"
kind = "local"

[[models]]
name = "m-chat"
kind = "chat"
input_price = 1.5
output_price = 4
cache_read_price = 0.25
max_output_tokens = 2048
auto_rank = 3
routes = [
  { provider = "p-openai", model = "up-1" },
  { provider = "p-local", model = "clawwits-sandbox" },
]
"""


def test_loadproviders_round_trip_and_upsert(tmp_path, db):
    path = tmp_path / "p.toml"
    path.write_text(PROVIDERS)
    call_command("loadproviders", str(path))
    model = AiModel.objects.get(name="m-chat")
    assert (str(model.input_price), str(model.output_price), str(model.cache_read_price)) == (
        "1.500000",
        "4.000000",
        "0.250000",
    )
    assert (model.max_output_tokens, model.auto_rank) == (2048, 3)
    routes = list(Route.objects.filter(model=model).values_list("provider__name", "upstream_model"))
    assert routes == [("p-openai", "up-1"), ("p-local", "clawwits-sandbox")]
    assert Provider.objects.get(name="p-openai").timeout_s == 12

    path.write_text(
        PROVIDERS.replace("timeout_s = 12", "timeout_s = 30").replace(
            '  { provider = "p-openai", model = "up-1" },\n', ""
        )
    )
    call_command("loadproviders", str(path))
    assert Provider.objects.get(name="p-openai").timeout_s == 30
    assert list(Route.objects.filter(model=model).values_list("provider__name", flat=True)) == [
        "p-local"
    ]
    assert AiModel.objects.filter(name="m-chat").count() == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[providers]]\nname='x'\nkind='nope'", "kind must be one of"),
        (
            "[[models]]\nname='m'\ninput_price=1\noutput_price=1\n"
            "routes=[{provider='ghost', model='y'}]",
            "unknown provider 'ghost'",
        ),
        ("[[models]]\nname='m'\noutput_price=1", "`input_price` is required"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_loadproviders_refuses_bad_files_and_changes_nothing(tmp_path, db, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    before = (Provider.objects.count(), AiModel.objects.count())
    with pytest.raises(CommandError, match=message):
        call_command("loadproviders", str(path))
    assert (Provider.objects.count(), AiModel.objects.count()) == before
