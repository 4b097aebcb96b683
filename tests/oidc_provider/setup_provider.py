"""Prepare the provider's database: its tables, one registered client (Weir) and the people
who may sign in, read as JSON from standard input:

    {"client": {"client_id", "client_secret", "redirect_uri"},
     "people": [{"username", "password", "email", "first_name", "last_name", "groups"}]}

Run as ``python -m tests.oidc_provider.setup_provider`` with the provider's settings.
"""

import json
import sys

import django


def main() -> None:
    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from oauth2_provider.models import Application

    spec = json.load(sys.stdin)
    call_command("migrate", verbosity=0, interactive=False)
    client = spec["client"]
    Application.objects.create(
        name="Weir",
        client_id=client["client_id"],
        client_secret=client["client_secret"],  # hashed when saved
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=client["redirect_uri"],
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,  # consent is approved without a page
    )
    for person in spec["people"]:
        groups = person.pop("groups", [])
        user = User.objects.create_user(**person)
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in groups])


if __name__ == "__main__":
    main()
