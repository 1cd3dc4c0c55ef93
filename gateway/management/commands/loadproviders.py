from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from gateway import providerfile


class Command(BaseCommand):
    help = "Create or update providers and models (with their routes) from a TOML file."

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, **opts):
        path = Path(opts["file"])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        try:
            applied = providerfile.apply(providerfile.parse(text))
        except providerfile.ProviderFileError as exc:
            raise CommandError(f"{path}: {exc}") from None
        self.stdout.write(
            f"providers: {applied.providers_created} created, {applied.providers_updated} updated; "
            f"models: {applied.models_created} created, {applied.models_updated} updated; "
            f"routes: {applied.routes}"
        )
