import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from accounts import webhooks
from wits import ledger


class Command(BaseCommand):
    help = "Settle reservations left open past their TTL (what the Celery beat task runs)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--every",
            type=float,
            default=0,
            help="keep running, once every SECONDS (the embedded default's stand-in for beat: "
            "each round also re-sends overdue webhook events, as beat's redeliver task does)",
        )
        parser.add_argument(
            "--rounds",
            type=int,
            default=0,
            help="with --every, stop after this many rounds (default: run until stopped)",
        )

    def handle(self, *args, **opts):
        rounds = 0
        while True:
            result = ledger.reconcile()
            self.stdout.write(
                f"committed={result.committed} released={result.released} skipped={result.skipped}"
            )
            if not opts["every"]:
                return
            # Without a broker, a failed webhook attempt is retried only by this sweep.
            resent = webhooks.sweep()
            if resent:
                self.stdout.write(f"webhooks re-sent={resent}")
            rounds += 1
            if rounds == opts["rounds"]:
                return
            self.stdout.flush()
            close_old_connections()
            time.sleep(opts["every"])
