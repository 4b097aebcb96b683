from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "controlplane.core"
    label = "weir"
    verbose_name = "Weir"
