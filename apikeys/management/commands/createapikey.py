from django.core.management.base import BaseCommand, CommandError

from accounts.services import AccountError, find_user
from apikeys import services
from apikeys.scopes import parse_scopes
from clawwits.errors import ApiError


class Command(BaseCommand):
    help = "Create an API key for an account. Prints only the key: it is never shown again."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument(
            "--scopes", default="full", help="comma-separated: full,ai,data,automation"
        )
        parser.add_argument("--name", default="cli key")

    def handle(self, *args, **opts):
        try:
            user = find_user(opts["email"])
            scopes = parse_scopes(opts["scopes"])
            issued = services.create_key(user_id=user.id, name=opts["name"], scopes=scopes)
        except (AccountError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        except ApiError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(issued.plaintext)
