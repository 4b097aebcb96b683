"""``manage.py create_api_token NAME``: issue a control-plane API token and print it once."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from controlplane.access import signals
from controlplane.access.models import PrincipalType
from controlplane.access.principals import make_first_owner, principal_of
from controlplane.core.models import ApiToken


class Command(BaseCommand):
    help = (
        "Create an API token for the principal NAME (a service principal, created if new) and "
        "print it. On an install with no role assignment yet, NAME becomes Owner of every scope."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="principal name the token acts as")
        parser.add_argument(
            "--days",
            type=int,
            default=settings.WEIR_API_TOKEN_DAYS,
            help="days until the token expires (0: never; default %(default)s)",
        )
        parser.add_argument("--label", default="", help="what the token is for")
        parser.add_argument(
            "--user",
            action="store_true",
            help="NAME is a person (who may also sign in), not a service principal",
        )

    def handle(self, *args, name, days, label, user, **options):
        account, _ = get_user_model().objects.get_or_create(username=name)
        kind = PrincipalType.USER if user else PrincipalType.SERVICE_PRINCIPAL
        principal = principal_of(account, kind)
        token, plaintext = ApiToken.issue(account, label or name, days or None)
        signals.token_created.send(
            sender=ApiToken, request=None, principal=None, token=token, owner=account
        )
        if make_first_owner(account):
            self.stderr.write(f"{principal.kind} '{name}' is Owner of every scope (/).")
        # The plaintext goes to stdout only; it is stored as a digest.
        self.stdout.write(plaintext)
