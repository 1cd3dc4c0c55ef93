"""Seed the built-in local provider and its two models, so a new install answers at once."""

from decimal import Decimal

from django.db import migrations


def seed(apps, schema_editor):
    Provider = apps.get_model("gateway", "Provider")
    AiModel = apps.get_model("gateway", "AiModel")
    Route = apps.get_model("gateway", "Route")
    local, _ = Provider.objects.get_or_create(
        name="local", defaults={"kind": "local", "base_url": "", "timeout_s": 60.0}
    )
    models = [
        ("clawwits-sandbox", "chat", Decimal("1"), Decimal("2"), 4096,
         "Deterministic sandbox chat model served on this machine"),
        ("clawwits-embed", "embedding", Decimal("1"), Decimal("0"), 1,
         "multilingual-e5-small embeddings, 1024 dims, served on this machine"),
    ]
    for name, kind, input_price, output_price, max_output, description in models:
        model, created = AiModel.objects.get_or_create(
            name=name,
            defaults={
                "kind": kind,
                "input_price": input_price,
                "output_price": output_price,
                "cache_read_price": input_price / 10,
                "max_output_tokens": max_output,
                "auto_rank": 1000,
                "description": description,
            },
        )
        if created:
            Route.objects.create(model=model, provider=local, upstream_model=name, position=0)


class Migration(migrations.Migration):
    dependencies = [("gateway", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
