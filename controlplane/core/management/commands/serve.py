"""``manage.py serve``: the control plane (or, with ``--blob``, the blob store) over HTTPS.

nginx holds the clients' connections (TLS, keep-alive, deadlines for slow clients) and hands
each request, read whole, to gunicorn's sync workers over a unix socket; this command runs
both and stops both. The certificate is self-signed, made on first start, unless
WEIR_TLS_CERT/WEIR_TLS_KEY name the operator's.
"""

import datetime
import fcntl
import grp
import ipaddress
import os
import pwd
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from controlplane.core.management import nginx, serving


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
        if not shutil.which("nginx"):
            raise CommandError(
                "nginx is not installed: bin/start installs it (Debian package nginx)"
            )
        server = "blob" if blob else "api"
        if blob:
            bind = bind or os.environ.get("WEIR_BLOB_BIND", "127.0.0.1:8444")
            os.environ["WEIR_URLCONF"] = "controlplane.blobstore.urls"
        else:
            bind = bind or os.environ.get("WEIR_BIND", "127.0.0.1:8443")
        cert, key = Path(settings.WEIR_TLS_CERT), Path(settings.WEIR_TLS_KEY)
        if ensure_certificate(cert, key):
            self.stdout.write(f"created a self-signed certificate: {cert}")
        state = settings.DATA_DIR / "serve" / f"{server}-{bind.rsplit(':', 1)[-1]}"
        state.mkdir(parents=True, exist_ok=True)
        # gunicorn's socket goes in a private directory of its own (removed on exit): a unix
        # socket's path is limited to 107 bytes, which a deep data directory could pass.
        private = Path(tempfile.mkdtemp(prefix="weir-serve-"))
        if blob:
            max_body = settings.WEIR_BLOB_MAX_UPLOAD
        else:
            # Django refuses a larger API body anyway; nginx does it first, in ARM's shape.
            max_body = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
        site = nginx.Site(
            server=server,
            listen=bind,
            socket=private / "gunicorn.sock",
            state=state,
            certificate=cert,
            key=key,
            max_body=max_body,
            upstream_timeout=300 if blob else 60,
            blob=blob,
            user=_user_and_group() if os.geteuid() == 0 else None,
        )
        config = state / "nginx.conf"
        config.write_text(nginx.render(site))
        self.stdout.flush()
        # What runs from here on needs no Django: a small process in place of this one (run
        # by its path, so that it needs nothing on sys.path either).
        os.execv(
            sys.executable,
            [
                sys.executable,
                str(Path(serving.__file__)),
                "--socket",
                str(site.socket),
                "--nginx-config",
                str(config),
                "--banner",
                f"serving https://{bind} (trust it with REQUESTS_CA_BUNDLE={cert})",
                "--",
                *_gunicorn_command(site, workers),
            ],
        )


def _gunicorn_command(site: nginx.Site, workers: int) -> list[str]:
    command = [
        "gunicorn",
        "controlplane.wsgi:application",
        "--bind",
        f"unix:{site.socket}",
        "--workers",
        str(workers),
        "--timeout",
        str(site.upstream_timeout),
        # nginx writes the access log (it knows the client and sees what it refuses) and
        # bounds the request line and headers; gunicorn's own limits would only refuse, in
        # plain text, what nginx let through.
        "--limit-request-line",
        "0",
        "--limit-request-field_size",
        "0",
        "--limit-request-fields",
        "32768",
        # gunicorn trusts its unix socket's peer (nginx) for X-Forwarded-Proto; nothing else
        # a client could send may set the WSGI environment (SCRIPT_NAME, PATH_INFO).
        "--forwarder-headers",
        "",
        # gunicorn's control socket is one path per user: the API's and the blob store's
        # would take it from each other. Weir does not use it.
        "--no-control-socket",
    ]
    if site.blob:
        # Azure metadata names (x-ms-meta-upload_status) have underscores, which gunicorn
        # drops by default; the blob views read only x-ms-meta-* names from them.
        command += ["--header-map", "dangerous"]
    return command


def _user_and_group() -> str:
    # nginx started as root runs its workers as "nobody" unless told: they write request
    # bodies into the data directory and connect to gunicorn's socket, as this user does.
    return f"{pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name}"
