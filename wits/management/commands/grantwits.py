from django.core.management.base import BaseCommand, CommandError

from accounts.services import AccountError, find_user
from wits import ledger


class Command(BaseCommand):
    help = "Grant Wits to an account (negative AMOUNT: an adjustment). Prints the new balance."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("amount", type=int)
        parser.add_argument("--note", default="")

    def handle(self, *args, **opts):
        amount = opts["amount"]
        kind = ledger.Kind.GRANT if amount > 0 else ledger.Kind.ADJUSTMENT
        try:
            user = find_user(opts["email"])
            entry = ledger.grant(
                user_id=user.id,
                amount=amount,
                actor="command:grantwits",
                note=opts["note"],
                kind=kind,
            )
        except (AccountError, ledger.LedgerError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"available={entry.available_after}")
