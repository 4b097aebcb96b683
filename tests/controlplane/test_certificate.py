"""The self-signed certificate names every host Azure's clients will ask for."""

from cryptography import x509
from django.test import override_settings

from controlplane.core.management.commands.serve import ensure_certificate


def names(tmp_path) -> set[str]:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    assert ensure_certificate(cert, key)
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    alt = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(alt.get_values_for_type(x509.DNSName))


@override_settings(WEIR_BLOB_URL="https://weir.example.org:8444")
def test_blob_accounts_under_the_blob_host_are_named(tmp_path):
    assert {"localhost", "*.localhost", "*.blob.localhost", "*.blob.weir.example.org"} <= names(
        tmp_path
    )


@override_settings(WEIR_BLOB_URL="https://127.0.0.1:8444")
def test_an_address_gets_no_wildcard(tmp_path):
    assert not any(name.endswith("127.0.0.1") for name in names(tmp_path))
