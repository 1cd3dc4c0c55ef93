import sys

from django.core.management.base import BaseCommand

from wits import ledger
from wits.models import Wallet


class Command(BaseCommand):
    help = "Replay every wallet from its ledger entries; exit 1 on any drift (BAR.md L1-L4)."

    def handle(self, *args, **opts):
        drifts = ledger.check()
        wallets = Wallet.objects.count()
        for drift in drifts:
            self.stdout.write(f"DRIFT {drift.user_id}: {drift.problem}")
        if drifts:
            self.stdout.write(f"{len(drifts)} problem(s) in {wallets} wallet(s)")
            sys.exit(1)
        self.stdout.write(f"ok: {wallets} wallet(s) conserve exactly")
