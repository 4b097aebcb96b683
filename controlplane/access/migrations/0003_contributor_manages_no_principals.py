"""Contributor may no longer write Weir.Access (principals, groups, tokens): see roles.py."""

from importlib import import_module

from django.db import migrations

sync = import_module("controlplane.access.migrations.0002_built_in_roles").sync


class Migration(migrations.Migration):
    dependencies = [("access", "0002_built_in_roles")]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
