import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from wits import ledger


class Command(BaseCommand):
    help = "Settle reservations left open past their TTL (what the Celery beat task runs)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--every",
            type=float,
            default=0,
            help="keep running, once every SECONDS (the embedded default's stand-in for beat)",
        )

    def handle(self, *args, **opts):
        while True:
            result = ledger.reconcile()
            self.stdout.write(
                f"committed={result.committed} released={result.released} skipped={result.skipped}"
            )
            if not opts["every"]:
                return
            self.stdout.flush()
            close_old_connections()
            time.sleep(opts["every"])
