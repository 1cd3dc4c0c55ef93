from django.core.management.base import BaseCommand

from accounts import services
from accounts.models import User
from apikeys import services as key_services
from apikeys.scopes import Scope

DEMO_EMAIL = "demo@clawwits.local"
DEMO_PASSWORD = "demo-password-123"
DEMO_GRANT = 3_000_000


class Command(BaseCommand):
    help = "Create the demo account and a demo API key if they do not exist yet."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, **opts):
        base = opts["base_url"].rstrip("/")
        if User.objects.filter(email=DEMO_EMAIL).exists():
            self.stdout.write(
                f"Demo account {DEMO_EMAIL} exists (password {DEMO_PASSWORD}). Its key was shown "
                f"when it was created; get another with:\n"
                f"  .venv/bin/python manage.py createapikey {DEMO_EMAIL} --name demo"
            )
            return
        user = services.create_account(
            email=DEMO_EMAIL, password=DEMO_PASSWORD, welcome_wits=DEMO_GRANT, actor="demo"
        )
        issued = key_services.create_key(
            user_id=user.id, name="demo", scopes=frozenset({Scope.FULL})
        )
        self.stdout.write(
            f"Demo account: {DEMO_EMAIL} / {DEMO_PASSWORD} with {DEMO_GRANT:,} Wits\n"
            f"Demo API key (shown once): {issued.plaintext}\n\n"
            f"Try it:\n"
            f"  curl {base}/v1/chat/completions -H 'Authorization: Bearer {issued.plaintext}' "
            f"-H 'Content-Type: application/json' "
            f'-d \'{{"messages": [{{"role": "user", "content": "Hi"}}]}}\'\n'
        )
