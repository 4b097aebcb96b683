from django.apps import AppConfig


class BlobstoreConfig(AppConfig):
    name = "controlplane.blobstore"
    label = "blobstore"
    verbose_name = "Weir blob store"
