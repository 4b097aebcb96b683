"""The built-in roles (controlplane/access/roles.py), kept as the module says on every
migrate: a later change to a built-in role is a new migration that calls ``sync`` again."""

from django.db import migrations


def sync(apps, schema_editor):
    from controlplane.access.roles import BUILT_IN

    RoleDefinition = apps.get_model("access", "RoleDefinition")
    for role_id, (name, description, permissions) in BUILT_IN.items():
        RoleDefinition.objects.update_or_create(
            id=role_id,
            defaults={
                "role_name": name,
                "description": description,
                "role_type": "BuiltInRole",
                "permissions": permissions,
                "assignable_scopes": ["/"],
            },
        )


class Migration(migrations.Migration):
    dependencies = [("access", "0001_initial")]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
