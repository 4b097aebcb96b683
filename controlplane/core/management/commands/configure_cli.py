"""``manage.py configure_cli --url URL``: point this machine's ``weir`` CLI at this Weir.

Run by ``bin/start``: when the CLI's config (``~/.weir/config``, or WEIR_CLI_CONFIG) has no
API token yet, it issues one for the principal ``weir-cli`` and writes it there (readable by
its owner only) with the server's URL and self-signed certificate. A config that already
has a token is left as it is."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from cli import config
from controlplane.core.models import ApiToken

PRINCIPAL = "weir-cli"


class Command(BaseCommand):
    help = "Give the local weir CLI a server URL, certificate and API token (once)."

    def add_arguments(self, parser):
        parser.add_argument("--url", required=True, help="the control plane's URL")

    def handle(self, *args, url, **options):
        parser = config.read_file()
        if parser.get("server", "token", fallback=None):
            self.stdout.write(f"weir CLI: using {config.path()}")
            return
        user, _ = get_user_model().objects.get_or_create(username=PRINCIPAL)
        _, token = ApiToken.issue(user, "weir CLI on this machine", settings.WEIR_API_TOKEN_DAYS)
        parser.set("server", "url", url)
        parser.set("server", "token", token)
        parser.set("server", "ca_bundle", str(settings.WEIR_TLS_CERT))
        path = config.write_file(parser)
        self.stdout.write(f"weir CLI: configured in {path} (API token for '{PRINCIPAL}')")
