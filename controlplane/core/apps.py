from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "controlplane.core"
    label = "weir"
    verbose_name = "Weir"

    def ready(self):
        from django.db.models import CharField
        from django.db.models.functions import Lower

        # Names are unique case-insensitively through indexes on LOWER(name); a lookup
        # written name__lower=value.lower() uses them, where name__iexact (UPPER) scans.
        CharField.register_lookup(Lower)
