"""Weir's blob server answers azure-storage-blob as Azure Storage does, checked against
Azurite, Microsoft's own emulator: each test runs the same client calls against both and
compares what the client sees (results, properties, headers it reads, listing pages, error
classes, statuses and codes).

Azurite is installed by bin/test from npm (tests/clients/azurite, ensure_node_client in
bin/_prepare.sh) and started here on loopback, in memory. Azurite is reached with its
well-known development account key, Weir with a SAS it signed (Weir has no account keys).

A difference is either fixed in Weir or listed in INTENDED with its reason; the tests
normalize exactly those and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from urllib.parse import urlsplit

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobBlock, ContainerClient, ContentSettings

from dataplane.agent.supervisor import free_port

AZURITE = os.environ.get("WEIR_AZURITE_BLOB")
# Azurite's documented development account (the same in every installation).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
# Small limits, so small blobs take the client's block upload and ranged download paths.
CLIENT_OPTIONS = {
    "max_single_put_size": 1024,
    "max_block_size": 512,
    "max_single_get_size": 1024,
    "max_chunk_get_size": 512,
}

# What Weir does differently on purpose; each test's normalization names its entry.
INTENDED = {
    "metadata-name-case": (
        "Metadata names come back lower-cased: Weir serves over WSGI, where header names "
        "arrive upper-cased and their case is lost. Azure matches names case-insensitively."
    ),
    "server-encrypted": (
        "x-ms-server-encrypted is false: Weir stores blob content unencrypted on its own disk "
        "and says so; Azure encrypts everything at rest."
    ),
    "one-container": (
        "A Weir SAS names one container, the workspace's, which always exists: a request for "
        "another container is refused (403 AuthenticationFailed) before its existence is "
        "looked up, where Azure answers 404 ContainerNotFound."
    ),
}

# Where Azurite itself answers otherwise than Azure, Weir follows Azure; the test says so.
AZURITE_DIFFERS = {
    "md5-errors": (
        "A body that does not match the MD5 sent with it is 400 Md5Mismatch in Azure (and "
        "Weir), an MD5 that is not 16 bytes in base64 is 400 InvalidMd5; Azurite 3.35 says "
        "400 InvalidOperation to both."
    ),
    "range-past-the-end": (
        "A range that starts at or past the end of a blob is 416 InvalidRange in Azure (and "
        "Weir); Azurite 3.35 answers 206 with no bytes."
    ),
}

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        not AZURITE, reason="WEIR_AZURITE_BLOB is not set: run the suite with bin/test"
    ),
]


# --------------------------------------------------------------------------------------------
# The two servers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    """Azurite's blob service on a free loopback port, in memory, for this module."""
    workdir = tmp_path_factory.mktemp("azurite")
    port = free_port()
    with open(workdir / "azurite.log", "wb") as log:
        process = subprocess.Popen(
            [AZURITE, "--blobHost", "127.0.0.1", "--blobPort", str(port)]
            + ["--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry"],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the stop reaches every child
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (workdir / "azurite.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "Azurite did not listen within 30 s"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/{ACCOUNT}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def pair(stack, workspace, azurite) -> dict[str, ContainerClient]:
    """An empty container on each side: the workspace's (through a container SAS) and a new
    one in Azurite (through the account key)."""
    secrets = stack.call("POST", f"{workspace}/datastores/workspaceblobstore/listSecrets").json()
    datastore = stack.call("GET", f"{workspace}/datastores/workspaceblobstore").json()
    account = datastore["properties"]["accountName"]
    container = datastore["properties"]["containerName"]
    weir = stack.container_client(
        f"{stack.blob_url}/{account}/{container}?{secrets['sasToken']}", **CLIENT_OPTIONS
    )
    reference = ContainerClient(
        azurite,
        f"c{uuid.uuid4().hex}",
        credential={"account_name": ACCOUNT, "account_key": ACCOUNT_KEY},
        **CLIENT_OPTIONS,
    )
    reference.create_container()
    return {"weir": weir, "azurite": reference}


def same(pair, scenario) -> dict:
    """Run ``scenario(client)`` on both sides; what each saw must be equal."""
    seen = {side: scenario(client) for side, client in pair.items()}
    assert_same(seen["weir"], seen["azurite"])
    return seen["weir"]


def assert_same(weir, azurite) -> None:
    weir, azurite = flatten(weir), flatten(azurite)
    differences = [
        f"{path}: weir {weir.get(path, '(absent)')!r}, azurite {azurite.get(path, '(absent)')!r}"
        for path in sorted(set(weir) | set(azurite))
        if weir.get(path, "(absent)") != azurite.get(path, "(absent)")
    ]
    assert not differences, "\n".join(differences)


def flatten(value, path: str = "") -> dict:
    """Every leaf of nested dicts, lists and tuples by its path, so a difference names its
    place instead of two whole structures."""
    if isinstance(value, dict) and value:
        return {
            k: v for key, item in value.items() for k, v in flatten(item, f"{path}.{key}").items()
        }
    if isinstance(value, (list, tuple)) and value and not isinstance(value, Refused):
        return {
            k: v for i, item in enumerate(value) for k, v in flatten(item, f"{path}[{i}]").items()
        }
    return {path: value}


# --------------------------------------------------------------------------------------------
# What the client sees, normalized where values must differ (ETag and time values)
# --------------------------------------------------------------------------------------------


class Refused(NamedTuple):
    error: str  # the azure-core exception class the client raised
    status: int
    code: str | None  # x-ms-error-code


def attempt(call, *args, **kwargs):
    """The call's result, or how it was refused."""
    try:
        return call(*args, **kwargs)
    except HttpResponseError as exc:
        return Refused(type(exc).__name__, exc.status_code, exc.error_code)


ETAG_VALUE = re.compile(r"0x[0-9A-F]{15,16}")


def etag_shape(etag: str | None) -> str | None:
    """Azure's ETags are 0x-prefixed upper-case hex (quoted in headers, bare in listings);
    the value itself differs by server, its shape must not."""
    return ETAG_VALUE.sub("0x…", etag) if etag else etag


def moment(value: datetime | None) -> str | None:
    """A time the server set: it must be timezone-aware, whole seconds and about now."""
    if value is None:
        return None
    assert value.tzinfo is not None and value.microsecond == 0, value
    assert abs(datetime.now(UTC) - value) < timedelta(minutes=5), value
    return "now"


def md5(value) -> str | None:
    return base64.b64encode(bytes(value)).decode() if value else None


# The response headers azure-storage-blob reads into what it returns (BlobProperties,
# StorageStreamDownloader, upload results, errors).
HEADERS_READ = {
    "content-length",
    "content-type",
    "content-md5",
    "x-ms-blob-content-md5",
    "content-range",
    "content-encoding",
    "content-language",
    "content-disposition",
    "cache-control",
    "accept-ranges",
    "etag",
    "last-modified",
    "x-ms-creation-time",
    "x-ms-blob-type",
    "x-ms-lease-status",
    "x-ms-lease-state",
    "x-ms-error-code",
}
HTTP_DATE = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")


class Heard:
    """Every response of one client call, as (status, the headers clients read): pass it as
    the call's ``raw_response_hook``."""

    def __init__(self):
        self.responses = []

    def __call__(self, pipeline_response) -> None:
        request = pipeline_response.http_request
        response = pipeline_response.http_response
        headers = {name.lower(): value for name, value in response.headers.items()}
        if response.status_code >= 300:
            # Of an error, clients read the status and the error code (Azurite's error answers
            # are chunked, without a Content-Length, and echo no client request id); a 416
            # says the blob's size in Content-Range.
            error = (headers.get("x-ms-error-code"), headers.get("content-range"))
            self.responses.append((response.status_code, error))
            return
        seen = {name: headers[name] for name in sorted(HEADERS_READ & set(headers))}
        for name in ("last-modified", "x-ms-creation-time"):
            if name in seen:
                assert HTTP_DATE.match(seen[name]), seen[name]
                seen[name] = "http-date"
        if "etag" in seen:
            seen["etag"] = etag_shape(seen["etag"])
        # INTENDED["metadata-name-case"]
        seen.update({n.lower(): v for n, v in headers.items() if n.startswith("x-ms-meta-")})
        sent = request.headers.get("x-ms-client-request-id")
        seen["client request id echoed"] = headers.get("x-ms-client-request-id") == sent
        self.responses.append((response.status_code, seen))


def properties(blob) -> dict:
    """The properties a client reads (get_blob_properties, a download's or a listing's)."""
    settings = blob.content_settings
    return {
        "name": blob.name,
        "size": blob.size,
        "blob_type": str(blob.blob_type),
        "etag": etag_shape(blob.etag),
        "last_modified": moment(blob.last_modified),
        "creation_time": moment(blob.creation_time),
        "content_type": settings.content_type,
        "content_md5": md5(settings.content_md5),
        "content_encoding": settings.content_encoding,
        "content_language": settings.content_language,
        "content_disposition": settings.content_disposition,
        "cache_control": settings.cache_control,
        # INTENDED["metadata-name-case"]
        "metadata": {k.lower(): v for k, v in (blob.metadata or {}).items()},
        "lease": (str(blob.lease.status), str(blob.lease.state), blob.lease.duration),
        "tier": (blob.blob_tier, blob.blob_tier_inferred),
        # INTENDED["server-encrypted"]: said on both sides, true only in Azure.
        "server_encrypted": blob.server_encrypted is not None,
        "content_range": blob.content_range,
    }


def upload_result(result: dict, random_block_ids: bool = False) -> dict:
    """What upload_blob, commit_block_list and set_blob_metadata return. After blocks with
    ids the client chose at random, the Content-MD5 (of the block list) can only be there."""
    return {
        "keys": sorted(k for k, v in result.items() if v is not None and k != "date"),
        # INTENDED["server-encrypted"]: present on both sides, true only in Azure.
        "request_server_encrypted": result.get("request_server_encrypted") is not None,
        "etag": etag_shape(result.get("etag")),
        "last_modified": moment(result.get("last_modified")),
        "content_md5": bool(result.get("content_md5"))
        if random_block_ids
        else md5(result.get("content_md5")),
    }


def download(client, name: str, **kwargs) -> dict:
    """download_blob and readall: the content and properties, or how it was refused, and
    what was heard."""
    heard = Heard()
    try:
        stream = client.download_blob(name, raw_response_hook=heard, **kwargs)
        content = stream.readall()
    except HttpResponseError as exc:
        refused = Refused(type(exc).__name__, exc.status_code, exc.error_code)
        return {"refused": refused, "responses": heard.responses}
    return {
        "content": content,
        "size": stream.size,
        **properties(stream.properties),
        "responses": heard.responses,
    }


def head(blob, **kwargs):
    """get_blob_properties: the properties, or how it was refused, and what was heard."""
    heard = Heard()
    outcome = attempt(blob.get_blob_properties, raw_response_hook=heard, **kwargs)
    if not isinstance(outcome, Refused):
        outcome = properties(outcome)
    return {"outcome": outcome, "responses": heard.responses}


# --------------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, 3000])
def test_an_upload_on_either_side_of_the_single_put_limit(pair, size):
    content = os.urandom(size)

    def scenario(client):
        blob = client.get_blob_client("dir/blob.bin")
        uploaded = blob.upload_blob(content, metadata={"kind": "bytes"})
        return {
            "upload": upload_result(uploaded, random_block_ids=size > 1024),
            "properties": head(blob),
            "download": download(client, "dir/blob.bin"),
        }

    seen = same(pair, scenario)
    assert seen["download"]["content"] == content


def test_blocks_staged_and_committed_by_hand(pair):
    def scenario(client):
        blob = client.get_blob_client("blocks.bin")
        for block_id, part in (("b1", b"hello "), ("b2", b"world"), ("b3", b"unused")):
            blob.stage_block(block_id, part)
        committed = blob.commit_block_list(
            [BlobBlock("b1"), BlobBlock("b2")],
            metadata={"step": "one"},
            content_settings=ContentSettings(content_type="text/plain"),
        )
        missing = attempt(blob.commit_block_list, [BlobBlock("b1"), BlobBlock("never")])
        return {
            "commit": upload_result(committed),
            "properties": head(blob),
            "content": blob.download_blob().readall(),
            "missing block": missing,
        }

    assert same(pair, scenario)["content"] == b"hello world"


def test_content_settings_are_kept(pair):
    settings = ContentSettings(
        content_type="application/json",
        content_encoding="gzip",
        content_language="en",
        content_disposition="attachment",
        cache_control="no-cache",
    )

    large = b"{}" * 1000
    with_md5 = ContentSettings(content_md5=bytearray(hashlib.md5(large).digest()))
    not_an_md5 = ContentSettings(content_md5=bytearray(b"short"))

    def scenario(client):
        wrong = ContentSettings(content_md5=bytearray(hashlib.md5(b"other").digest()))
        client.upload_blob("small.json", b"{}", content_settings=settings)
        client.upload_blob("large.json", large, content_settings=settings)
        # A client-set MD5 is kept for a blob committed from blocks, too.
        client.upload_blob("md5.json", large, content_settings=with_md5)
        names = ("small.json", "large.json", "md5.json")
        return {
            **{name: head(client.get_blob_client(name)) for name in names},
            "not an md5": attempt(
                client.upload_blob, "bad.json", b"{}", content_settings=not_an_md5
            ),
            "not the content's md5": attempt(
                client.upload_blob, "bad.json", b"{}", content_settings=wrong
            ),
        }

    seen = {side: scenario(client) for side, client in pair.items()}
    # AZURITE_DIFFERS["md5-errors"]: the same status on both sides, Azure's codes on Weir's.
    assert seen["weir"]["not an md5"] == Refused("HttpResponseError", 400, "InvalidMd5")
    assert seen["weir"]["not the content's md5"] == Refused("HttpResponseError", 400, "Md5Mismatch")
    for side in seen.values():
        side["not an md5"] = side["not an md5"].status
        side["not the content's md5"] = side["not the content's md5"].status
    assert_same(seen["weir"], seen["azurite"])


def test_overwrite_and_metadata(pair):
    def scenario(client):
        blob = client.get_blob_client("m.txt")
        blob.upload_blob(b"one", metadata={"a": "1"})
        exists = attempt(blob.upload_blob, b"two")  # overwrite=False: If-None-Match: *
        replaced = upload_result(blob.upload_blob(b"two", overwrite=True))
        after_overwrite = blob.get_blob_properties().metadata
        set_result = upload_result(blob.set_blob_metadata({"Mixed": "Case", "b": "2"}))
        return {
            "exists": exists,
            "replaced": replaced,
            "metadata after overwrite": after_overwrite,
            "set": set_result,
            "properties": head(blob),
            "content": blob.download_blob().readall(),
        }

    same(pair, scenario)


def test_a_body_that_does_not_match_its_content_md5_is_refused(pair):
    """validate_content=True sends each body's MD5; here the hook swaps in another one (it
    runs before the request is signed, so Azurite still authenticates it)."""

    def wrong_md5(pipeline_request) -> None:
        other = base64.b64encode(hashlib.md5(b"other").digest()).decode()
        pipeline_request.http_request.headers["Content-MD5"] = other

    def scenario(client):
        blob = client.get_blob_client("md5.bin")
        sent = {"validate_content": True, "raw_request_hook": wrong_md5}
        return {
            "put blob": attempt(blob.upload_blob, b"data", **sent),
            "put block": attempt(blob.stage_block, "b1", b"data", **sent),
            "right md5": upload_result(blob.upload_blob(b"data", validate_content=True)),
            "nothing staged": attempt(blob.commit_block_list, [BlobBlock("b1")]),
        }

    seen = {side: scenario(client) for side, client in pair.items()}
    # AZURITE_DIFFERS["md5-errors"]: the same status on both sides, Azure's code on Weir's.
    for call in ("put blob", "put block"):
        assert seen["weir"][call] == Refused("HttpResponseError", 400, "Md5Mismatch")
        for side in seen.values():
            side[call] = side[call].status
    assert_same(seen["weir"], seen["azurite"])


# --------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------


def test_ranged_downloads(pair):
    content = bytes(range(256)) * 12  # 3072 bytes: the client downloads it in 512-byte chunks

    def scenario(client):
        client.upload_blob("r.bin", content)
        client.upload_blob("empty.bin", b"")
        return {
            "whole": download(client, "r.bin"),
            "middle": download(client, "r.bin", offset=100, length=1000),
            "from offset": download(client, "r.bin", offset=3000),
            "past the end": download(client, "r.bin", offset=3000, length=500),
            "empty": download(client, "empty.bin"),
            "empty with range": download(client, "empty.bin", offset=0, length=10),
            "validated": download(client, "r.bin", offset=0, length=700, validate_content=True),
        }

    seen = same(pair, scenario)
    assert seen["middle"]["content"] == content[100:1100]
    # AZURITE_DIFFERS["range-past-the-end"]: Weir answers as Azure does.
    weir = pair["weir"]
    past_the_end = download(weir, "r.bin", offset=3072, length=10)
    assert past_the_end["refused"] == Refused("HttpResponseError", 416, "InvalidRange")
    assert past_the_end["responses"] == [(416, ("InvalidRange", "bytes */3072"))]


# --------------------------------------------------------------------------------------------
# Conditional requests
# --------------------------------------------------------------------------------------------


def test_conditional_requests(pair):
    def scenario(client):
        blob = client.get_blob_client("c.txt")
        etag = blob.upload_blob(b"content")["etag"]
        modified = blob.get_blob_properties().last_modified
        later, earlier = modified + timedelta(hours=1), modified - timedelta(hours=1)
        unchanged, changed = MatchConditions.IfNotModified, MatchConditions.IfModified
        other = '"0x8D0000000000000"'

        def read(**conditions):
            return download(client, "c.txt", **conditions)

        return {
            "if-match same": read(etag=etag, match_condition=unchanged),
            "if-match other": read(etag=other, match_condition=unchanged),
            "if-none-match same": read(etag=etag, match_condition=changed),
            "if-none-match other": read(etag=other, match_condition=changed),
            "head if-none-match same": head(blob, etag=etag, match_condition=changed),
            "head if-match other": head(blob, etag=other, match_condition=unchanged),
            "if-modified-since later": read(if_modified_since=later),
            "if-modified-since earlier": read(if_modified_since=earlier),
            "if-modified-since itself": read(if_modified_since=modified),
            "if-unmodified-since earlier": read(if_unmodified_since=earlier),
            "if-unmodified-since later": read(if_unmodified_since=later),
            "head if-modified-since later": head(blob, if_modified_since=later),
            "write if-match other": attempt(
                blob.upload_blob, b"x", overwrite=True, etag=other, match_condition=unchanged
            ),
            "write if-unmodified-since earlier": attempt(
                blob.upload_blob, b"x", overwrite=True, if_unmodified_since=earlier
            ),
            "write if-modified-since later": attempt(
                blob.upload_blob, b"x", overwrite=True, if_modified_since=later
            ),
            "metadata if-match other": attempt(
                blob.set_blob_metadata, {"a": "b"}, etag=other, match_condition=unchanged
            ),
            "delete if-match other": attempt(
                blob.delete_blob, etag=other, match_condition=unchanged
            ),
            "content": blob.download_blob().readall(),
        }

    same(pair, scenario)


# --------------------------------------------------------------------------------------------
# Listing
# --------------------------------------------------------------------------------------------

NAMES = [
    "a.txt",
    "a/1.txt",
    "a/2.txt",
    "a/b/3.txt",
    "a-b/4.txt",
    "a0.txt",
    "B.txt",
    "b/5.txt",
    "b/6.txt",
    "b/7.txt",
    "c.txt",
]


def fill(client) -> None:
    for name in NAMES:
        client.upload_blob(name, name.encode(), metadata={"name": name.replace("/", "_")})


def entry(item) -> tuple:
    """A listing entry: a blob's name and properties, or a prefix's name."""
    if hasattr(item, "blob_type"):
        return ("blob", properties(item))
    return ("prefix", item.name)


def pages(paged) -> list:
    """Each page's entries, and what the pager read from its answer."""
    seen = []
    for page in paged:
        entries = [entry(item) for item in page]
        pager = {
            "prefix": paged.prefix,
            "results_per_page": paged.results_per_page,
            "more": bool(paged.continuation_token),
        }
        seen.append((entries, pager))
    return seen


def test_listing_with_prefixes_and_metadata(pair):
    def scenario(client):
        fill(client)
        return {
            "all": [b.name for b in client.list_blobs()],
            "a": [b.name for b in client.list_blobs(name_starts_with="a")],
            "a/": [b.name for b in client.list_blobs(name_starts_with="a/")],
            "none": [b.name for b in client.list_blobs(name_starts_with="zzz")],
            "metadata": [entry(b) for b in client.list_blobs("b/", include=["metadata"])],
            "no metadata": [b.metadata for b in client.list_blobs("b/")],
            "walk": [entry(b) for b in client.walk_blobs()],
            "walk a/": [entry(b) for b in client.walk_blobs("a/")],
            "walk a": [entry(b) for b in client.walk_blobs("a")],
            "walk by -": [entry(b) for b in client.walk_blobs(delimiter="-")],
        }

    same(pair, scenario)


@pytest.mark.parametrize("per_page", [1, 2, 3, 5])
def test_listing_pages_and_continuation(pair, per_page):
    def scenario(client):
        fill(client)
        listed = client.list_blobs(results_per_page=per_page).by_page()
        seen = pages(listed)
        walked = pages(client.walk_blobs(results_per_page=per_page).by_page())
        # Resuming from the first page's continuation token gives the rest.
        first = client.list_blobs(results_per_page=per_page).by_page()
        next(first)
        token = first.continuation_token
        resumed = pages(
            client.list_blobs(results_per_page=per_page).by_page(continuation_token=token)
        )
        return {"pages": seen, "walked": walked, "resumed": resumed}

    seen = same(pair, scenario)
    listed = [p["name"] for entries, _ in seen["pages"] for _, p in entries]
    assert listed == sorted(NAMES)


# --------------------------------------------------------------------------------------------
# Deletes and errors
# --------------------------------------------------------------------------------------------


def test_delete_and_missing_blobs(pair):
    def scenario(client):
        blob = client.get_blob_client("gone.txt")
        blob.upload_blob(b"x")
        deleted = blob.delete_blob()
        return {
            "delete": deleted,
            "download": download(client, "gone.txt"),
            "properties": head(blob),
            "exists": blob.exists(),
            "delete again": attempt(blob.delete_blob),
            "metadata": attempt(blob.set_blob_metadata, {"a": "b"}),
            "commit nothing staged": attempt(blob.commit_block_list, [BlobBlock("x")]),
        }

    same(pair, scenario)


def test_a_missing_container(pair, stack):
    """INTENDED["one-container"]: each side answers as it should, differently."""
    weir, reference = pair["weir"], pair["azurite"]
    missing = ContainerClient(
        reference.url.rsplit("/", 1)[0],
        "missing",
        credential={"account_name": ACCOUNT, "account_key": ACCOUNT_KEY},
    )
    assert attempt(missing.get_container_properties) == Refused(
        "ResourceNotFoundError", 404, "ContainerNotFound"
    )
    assert attempt(lambda: list(missing.list_blobs())) == Refused(
        "ResourceNotFoundError", 404, "ContainerNotFound"
    )
    # The container SAS, used for a container it does not name.
    parts = urlsplit(weir.url)
    other = parts._replace(path=parts.path.rsplit("/", 1)[0] + "/missing").geturl()
    elsewhere = stack.container_client(other)
    assert attempt(elsewhere.get_container_properties) == Refused(
        "ClientAuthenticationError", 403, "AuthenticationFailed"
    )
