from django.apps import AppConfig


class BatchConfig(AppConfig):
    name = "controlplane.batch"
    label = "batch"
    verbose_name = "Batch endpoints, deployments and jobs"

    def ready(self):
        from controlplane.batch.services import deployments_on
        from controlplane.core.services import compute

        compute.USERS.append(deployments_on)
