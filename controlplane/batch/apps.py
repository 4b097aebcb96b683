from django.apps import AppConfig


class BatchConfig(AppConfig):
    name = "controlplane.batch"
    label = "batch"
    verbose_name = "Batch endpoints, deployments and jobs"
