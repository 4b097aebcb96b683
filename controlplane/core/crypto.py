"""Encryption at rest for secrets kept in Postgres (endpoint keys, signing keys)."""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.db import models


@cache
def _fernet() -> MultiFernet:
    # The first key encrypts; every key decrypts, so keys can be rotated.
    return MultiFernet([Fernet(key.strip().encode()) for key in settings.WEIR_ENCRYPTION_KEYS])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    return _fernet().decrypt(ciphertext.encode()).decode()


class EncryptedTextField(models.TextField):
    """A text column whose value is a Fernet token in the database and plaintext in Python."""

    def from_db_value(self, value, expression, connection):
        return None if value is None else decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return None if value is None else encrypt(value)
