"""``manage.py create_api_token NAME``: issue a control-plane API token and print it once."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from controlplane.core.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for the principal NAME (created if new) and print it."

    def add_arguments(self, parser):
        parser.add_argument("name", help="principal (user) name the token acts as")
        parser.add_argument(
            "--days",
            type=int,
            default=settings.WEIR_API_TOKEN_DAYS,
            help="days until the token expires (0: never; default %(default)s)",
        )
        parser.add_argument("--label", default="", help="what the token is for")

    def handle(self, *args, name, days, label, **options):
        user, _ = get_user_model().objects.get_or_create(username=name)
        _, plaintext = ApiToken.issue(user, label or name, days or None)
        # The plaintext goes to stdout only; it is stored as a digest.
        self.stdout.write(plaintext)
