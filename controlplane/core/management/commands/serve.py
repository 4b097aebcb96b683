"""``manage.py serve``: the control plane over HTTPS (gunicorn), with a self-signed
certificate made on first start unless WEIR_TLS_CERT/WEIR_TLS_KEY name the operator's."""

import datetime
import fcntl
import ipaddress
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.management.base import BaseCommand


def ensure_certificate(cert_path: Path, key_path: Path) -> bool:
    """Create a self-signed certificate for localhost and this host if none exists."""
    if cert_path.exists() and key_path.exists():
        return False
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    # The API and blob servers start together: one makes the pair, the other waits for it.
    with open(cert_path.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cert_path.exists() and key_path.exists():
            return False
        _write_certificate(cert_path, key_path)
        return True


def _write_certificate(cert_path: Path, key_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    hostname = socket.gethostname()
    blob_host = urlsplit(settings.WEIR_BLOB_URL).hostname or "localhost"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    alt_names = [
        x509.DNSName("localhost"),
        x509.DNSName("*.localhost"),
        # Azure's SDKs address a storage account as {account}.blob.{storage suffix}.
        *{x509.DNSName(f"*.blob.{host}") for host in ("localhost", blob_host) if _is_name(host)},
        x509.DNSName(hostname),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


class Command(BaseCommand):
    help = "Serve the control plane (or, with --blob, the blob store) over HTTPS."

    def add_arguments(self, parser):
        parser.add_argument("--bind", help="address:port [WEIR_BIND or WEIR_BLOB_BIND]")
        parser.add_argument("--blob", action="store_true", help="serve the blob store API")
        parser.add_argument(
            "--workers", type=int, default=int(os.environ.get("WEIR_WEB_WORKERS", "2"))
        )

    def handle(self, *args, bind, workers, blob, **options):
        if blob:
            bind = bind or os.environ.get("WEIR_BLOB_BIND", "127.0.0.1:8444")
            os.environ["WEIR_URLCONF"] = "controlplane.blobstore.urls"
        else:
            bind = bind or os.environ.get("WEIR_BIND", "127.0.0.1:8443")
        cert, key = Path(settings.WEIR_TLS_CERT), Path(settings.WEIR_TLS_KEY)
        if ensure_certificate(cert, key):
            self.stdout.write(f"created a self-signed certificate: {cert}")
        self.stdout.write(f"serving https://{bind} (trust it with REQUESTS_CA_BUNDLE={cert})")
        args = [
            "gunicorn",
            "controlplane.wsgi:application",
            "--bind",
            bind,
            "--workers",
            str(workers),
            "--certfile",
            str(cert),
            "--keyfile",
            str(key),
            "--access-logfile",
            "-",
            "--access-logformat",
            # The path without its query string: a SAS signature must never reach a log.
            '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss',
            "--timeout",
            "300" if blob else "60",
        ]
        if blob:
            # Azure metadata names (x-ms-meta-upload_status) have underscores, which gunicorn
            # drops by default; the blob views read only x-ms-meta-* names from them.
            args += ["--header-map", "dangerous"]
        os.execvp(args[0], args)
