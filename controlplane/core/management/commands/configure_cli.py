"""``manage.py configure_cli --url URL``: point this machine's ``weir`` CLI at this Weir.

Run by ``bin/start``: when the CLI's config (``~/.weir/config``, or WEIR_CLI_CONFIG) has no
API token yet, it issues one for the principal ``weir-cli`` (Owner of every scope when it is
the install's first principal) and hands it, with the server's URL and self-signed
certificate, to ``weir configure`` (the token on its standard input). A config that already
has a token is left as it is. The CLI owns its config file; this command only runs it."""

import json
import subprocess
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from controlplane.access import signals
from controlplane.access.principals import make_first_owner, principal_of
from controlplane.core.models import ApiToken

PRINCIPAL = "weir-cli"
CLI = [sys.executable, "-m", "cli", "configure", "-o", "json"]


class Command(BaseCommand):
    help = "Give the local weir CLI a server URL, certificate and API token (once)."

    def add_arguments(self, parser):
        parser.add_argument("--url", required=True, help="the control plane's URL")

    def handle(self, *args, url, **options):
        current = self._cli([])
        if current.get("token"):
            self.stdout.write(f"weir CLI: using {current['config']}")
            return
        user, _ = get_user_model().objects.get_or_create(username=PRINCIPAL)
        principal_of(user)
        issued, token = ApiToken.issue(
            user, "weir CLI on this machine", settings.WEIR_API_TOKEN_DAYS
        )
        signals.token_created.send(
            sender=ApiToken, request=None, principal=None, token=issued, owner=user
        )
        # On a new install the CLI's principal is the first: Owner of every scope, so the
        # README's quickstart runs as is. Otherwise an Owner gives it the roles it needs.
        owner = make_first_owner(user)
        arguments = ["--url", url, "--token", "-", "--ca-bundle", str(settings.WEIR_TLS_CERT)]
        written = self._cli(arguments, token)
        role = ", Owner of every scope" if owner else ""
        self.stdout.write(
            f"weir CLI: configured in {written['config']} (API token for '{PRINCIPAL}'{role})"
        )

    def _cli(self, arguments: list[str], stdin: str = "") -> dict:
        done = subprocess.run(
            CLI + arguments, input=stdin, capture_output=True, text=True, cwd=settings.BASE_DIR
        )
        if done.returncode != 0:
            raise CommandError(f"weir configure failed: {done.stderr.strip()}")
        return json.loads(done.stdout)
