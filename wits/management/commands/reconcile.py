from django.core.management.base import BaseCommand

from wits import ledger


class Command(BaseCommand):
    help = "Settle reservations left open past their TTL (what the Celery beat task runs)."

    def handle(self, *args, **opts):
        result = ledger.reconcile()
        self.stdout.write(
            f"committed={result.committed} released={result.released} skipped={result.skipped}"
        )
