from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "controlplane.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self):
        from controlplane.audit import receivers  # noqa: F401 - connects the signal receivers
