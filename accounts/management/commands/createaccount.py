from django.core.management.base import BaseCommand, CommandError

from accounts import services


class Command(BaseCommand):
    help = "Create an account (with its wallet). Prints the new account's id."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--password", required=True)
        parser.add_argument("--tier", default=None, help="tier slug, e.g. free_trial, pro")
        parser.add_argument(
            "--grant", type=int, default=0, help="Wits to grant at creation (a ledger entry)"
        )
        parser.add_argument("--staff", action="store_true", help="may use Django admin")

    def handle(self, *args, **opts):
        if opts["grant"] < 0:
            raise CommandError("--grant cannot be negative")
        try:
            user = services.create_account(
                email=opts["email"],
                password=opts["password"],
                tier_slug=opts["tier"],
                welcome_wits=opts["grant"],
                actor="command:createaccount",
                is_staff=opts["staff"],
            )
        except services.AccountError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(str(user.id))
