from django.apps import AppConfig


class V1Config(AppConfig):
    name = "controlplane.v1"
    label = "v1"
    verbose_name = "Azure ML SDK v1 services (artifacts, assets, model management)"
