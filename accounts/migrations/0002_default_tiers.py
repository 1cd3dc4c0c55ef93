from django.db import migrations

from accounts.tiers import ensure_default_tiers


def seed(apps, schema_editor):
    ensure_default_tiers(apps.get_model("accounts", "Tier"))


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
