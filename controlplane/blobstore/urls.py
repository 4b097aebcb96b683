"""URL configuration of the blob server (``manage.py serve --blob``): every path is a blob
address, so it has no other routes."""

from django.urls import re_path

from controlplane.blobstore.views import blob_service

urlpatterns = [re_path(r"^(?P<path>.*)$", blob_service)]
