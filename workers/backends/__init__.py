"""Where replicas run: one interface, chosen by the WEIR_BACKEND setting."""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string


@cache
def backend():
    return import_string(settings.WEIR_BACKEND)()
