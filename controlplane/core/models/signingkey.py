"""Keys that sign the AMLToken scoring tokens; private halves are encrypted at rest."""

from django.db import models

from controlplane.core.crypto import EncryptedTextField


class SigningKey(models.Model):
    kid = models.CharField(max_length=32, unique=True)
    algorithm = models.CharField(max_length=16, default="EdDSA")
    private_key_pem = EncryptedTextField()
    public_key_pem = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Only the active key signs; retired keys still verify until their tokens expire.
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.kid
