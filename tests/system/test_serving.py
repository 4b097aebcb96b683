"""What serves HTTP (``manage.py serve``: nginx in front of gunicorn), for the API and the blob
store: slow clients hold no worker, nginx's own refusals read like the server's, keep-alive
holds, and what Django builds from the request (absolute URLs) is as if nginx were not
there."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings

from controlplane.core.management.nginx import HEADER_BUFFER, HEADER_TIMEOUT

pytestmark = pytest.mark.system

SLOW_CLIENTS = 200
# Long enough for a stalled server to show, short enough that the slow clients are all still
# held when the answer comes.
PATIENCE = 5


class SlowClients:
    """``count`` anonymous TLS connections, each sending a request line and then one header
    line a second, never finishing the header; run in a thread of their own for at most
    ``limit`` seconds. ``held`` counts those the server has neither answered nor closed."""

    def __init__(self, url: str, ca_bundle: str, count: int, limit: float = 60):
        parts = urlsplit(url)
        self.host, self.port, self.count, self.limit = parts.hostname, parts.port, count, limit
        self.context = ssl.create_default_context(cafile=ca_bundle)
        self.connected = self.held = self.failed = 0
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._loop.call_soon_threadsafe(self._stopping.set)
        except RuntimeError:
            pass  # all of them were let go already, and the loop is closed
        self._thread.join(timeout=30)

    def wait_until(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _run(self) -> None:
        async def main():
            clients = asyncio.gather(*(self._client() for _ in range(self.count)))
            try:
                await asyncio.wait_for(clients, self.limit)
            except TimeoutError:
                pass

        self._loop.run_until_complete(main())
        self._loop.close()

    async def _client(self) -> None:
        try:
            reader, writer = await asyncio.open_connection(
                self.host,
                self.port,
                ssl=self.context,
                server_hostname="localhost",
                ssl_handshake_timeout=self.limit,
            )
        except OSError:
            self.failed += 1
            return
        self.connected += 1
        self.held += 1
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
            line = 0
            while not self._stopping.is_set():
                try:
                    # Anything from the server, an answer or the end, means it let go.
                    await asyncio.wait_for(reader.read(1024), timeout=1)
                    break
                except TimeoutError:
                    writer.write(b"X-Trickle-%d: x\r\n" % line)
                    line += 1
                    await writer.drain()
        except OSError:
            pass
        finally:
            self.held -= 1
            writer.close()


def _servers(stack, workspace) -> dict:
    """Per server: its URL, and an authenticated GET on it (a bearer token on the API, a SAS
    on the blob store)."""
    pending = stack.call(
        "POST", f"{workspace}/codes/held/versions/1/startPendingUpload", {}
    ).json()["blobReferenceForConsumption"]
    container = stack.container_client(pending["credential"]["sasUri"])
    directory = pending["blobUri"].split(f"/{container.container_name}/", 1)[1]
    container.upload_blob(f"{directory}/held.txt", b"held")
    sas = urlsplit(pending["credential"]["sasUri"])
    blob_url = sas._replace(path=f"{sas.path}/held.txt").geturl()
    return {
        "api": (
            stack.base_url,
            lambda: requests.get(
                f"{stack.base_url}{workspace}?api-version=2024-04-01",
                headers={"Authorization": f"Bearer {stack.token}"},
                verify=stack.ca_bundle,
                timeout=PATIENCE,
            ),
        ),
        "blob": (
            stack.blob_url,
            lambda: requests.get(blob_url, verify=stack.ca_bundle, timeout=PATIENCE),
        ),
    }


@pytest.mark.parametrize("server", ["api", "blob"])
def test_slow_clients_hold_no_worker(stack, workspace, server):
    url, authenticated_get = _servers(stack, workspace)[server]
    with SlowClients(url, stack.ca_bundle, SLOW_CLIENTS) as slow:
        slow.wait_until(
            lambda: slow.connected + slow.failed == SLOW_CLIENTS, timeout=HEADER_TIMEOUT
        )
        try:
            health = requests.get(f"{url}/healthz", verify=stack.ca_bundle, timeout=PATIENCE)
            owned = authenticated_get()
        except requests.Timeout:
            pytest.fail(
                f"{server}: not answered within {PATIENCE}s while {slow.held} of "
                f"{SLOW_CLIENTS} slow clients were held"
            )
        held_meanwhile = slow.held
        # On the blob store /healthz is no blob address: the blob server's own 400 answers.
        assert health.status_code == (200 if server == "api" else 400), health.text
        assert owned.status_code == 200, owned.text
        assert held_meanwhile == SLOW_CLIENTS, (slow.connected, slow.failed, held_meanwhile)

        # The header deadline: the server lets go of them itself, in time.
        assert slow.wait_until(lambda: slow.held == 0, timeout=HEADER_TIMEOUT + 5), slow.held


def _raw(url: str, ca_bundle: str, data: bytes) -> tuple[int, dict, bytes]:
    """Send bytes as they are over TLS; the status, headers (names in lower case) and body of
    the answer."""
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=ca_bundle)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as plain:
        with context.wrap_socket(plain, server_hostname="localhost") as tls:
            tls.sendall(data)
            response = http.client.HTTPResponse(tls)
            response.begin()
            headers = {name.lower(): value for name, value in response.getheaders()}
            return response.status, headers, response.read()


# Requests nginx refuses itself: the status, and the error code on the API and on the blob store.
REFUSALS = {
    "garbage": (400, "BadRequest", "InvalidInput"),
    "long request line": (414, "RequestUriTooLong", "InvalidUri"),
    "long header": (400, "RequestHeaderTooLarge", "InvalidHeaderValue"),
    "body too large": (413, "RequestContentTooLarge", "RequestBodyTooLarge"),
}
REQUESTS = {
    "garbage": b"HELLO\r\n\r\n",
    "long request line": b"GET /" + b"a" * HEADER_BUFFER + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "long header": (
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * HEADER_BUFFER + b"\r\n\r\n"
    ),
    # Only the header: nginx answers from Content-Length without reading the body.
    "body too large": (
        b"PUT /a/b/c HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
    ),
}


@pytest.mark.parametrize("case", list(REQUESTS))
def test_refusals_read_as_the_servers_own(stack, case):
    """413, 414 and 400s that nginx answers before any worker sees the request: ARM's JSON
    error on the API, Azure Storage's XML error (and x-ms-error-code) on the blob store."""
    status, api_code, blob_code = REFUSALS[case]
    for server, url, limit in (
        ("api", stack.base_url, settings.DATA_UPLOAD_MAX_MEMORY_SIZE),
        ("blob", stack.blob_url, int(stack.env["WEIR_BLOB_MAX_UPLOAD"])),
    ):
        data = REQUESTS[case] % (limit + 1) if case == "body too large" else REQUESTS[case]
        answered, headers, body = _raw(url, stack.ca_bundle, data)
        assert answered == status, (server, body)
        if server == "api":
            assert headers["content-type"] == "application/json"
            error = json.loads(body)["error"]
            assert error["code"] == api_code
            assert set(error) == {"code", "message", "target", "details", "additionalInfo"}
        else:
            assert headers["content-type"] == "application/xml"
            assert headers["x-ms-error-code"] == blob_code
            assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?><Error><Code>')
            assert f"<Code>{blob_code}</Code>".encode() in body


def test_plain_http_is_told_the_port_speaks_https(stack):
    for url, shape in ((stack.base_url, "json"), (stack.blob_url, "xml")):
        response = requests.get(url.replace("https://", "http://") + "/healthz", timeout=5)
        assert response.status_code == 400
        if shape == "json":
            assert response.json()["error"]["code"] == "HttpsRequired"
        else:
            assert response.headers["x-ms-error-code"] == "AccountRequiresHttps"


def test_connections_are_kept_alive(stack):
    for url in (stack.base_url, stack.blob_url):
        parts = urlsplit(url)
        context = ssl.create_default_context(cafile=stack.ca_bundle)
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, context=context)
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        first = connection.sock
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        assert first is not None and connection.sock is first, url
        connection.close()


def test_absolute_urls_name_the_host_the_client_used_over_https(stack, workspace):
    port = urlsplit(stack.base_url).port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        document = requests.get(
            f"{stack.base_url}/metadata/endpoints?api-version=2022-09-01",
            headers={"Host": host},
            verify=stack.ca_bundle,
            timeout=10,
        ).json()
        assert document["resourceManager"] == f"https://{host}/"
    endpoint = f"{workspace}/onlineEndpoints/absolute"
    created = stack.call("PUT", endpoint, {"location": "local", "properties": {"authMode": "Key"}})
    status_url = created.headers["Azure-AsyncOperation"]
    assert status_url.startswith(f"{stack.base_url}/subscriptions/")
    assert stack.wait_for_status(status_url)["status"] == "Succeeded"
    deleted = stack.call("DELETE", endpoint)
    assert deleted.status_code == 202
    assert deleted.headers["Location"].startswith(f"{stack.base_url}/subscriptions/")


def test_ranges_underscored_metadata_and_account_hosts_pass_through(stack, workspace):
    pending = stack.call(
        "POST", f"{workspace}/codes/ranges/versions/1/startPendingUpload", {}
    ).json()["blobReferenceForConsumption"]
    sas = urlsplit(pending["credential"]["sasUri"])
    blob = sas._replace(path=f"{sas.path}/digits.txt").geturl()
    stored = requests.put(
        blob,
        data=b"0123456789",
        headers={"x-ms-blob-type": "BlockBlob", "x-ms-meta-upload_status": "done"},
        verify=stack.ca_bundle,
    )
    assert stored.status_code == 201, stored.text
    for header in ("Range", "x-ms-range"):
        ranged = requests.get(blob, headers={header: "bytes=2-5"}, verify=stack.ca_bundle)
        assert ranged.status_code == 206, ranged.text
        assert ranged.content == b"2345"
        assert ranged.headers["Content-Range"] == "bytes 2-5/10"
        assert ranged.headers["x-ms-meta-upload_status"] == "done"
    # {account}.blob.localhost: the account comes from the Host header nginx passes on.
    account, rest = sas.path.lstrip("/").split("/", 1)
    hosted = requests.get(
        sas._replace(path=f"/{rest}/digits.txt").geturl(),
        headers={"Host": f"{account}.blob.localhost:{sas.port}"},
        verify=stack.ca_bundle,
    )
    assert hosted.content == b"0123456789"
