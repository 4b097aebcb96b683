"""The Blob REST API subset Azure's SDKs use: Put Blob, Put Block, Put Block List, Get and
Head Blob (with ranges), Set Blob Metadata, Delete Blob, List Blobs, container properties.

Every request carries a SAS that Weir signed; nothing else authorizes a blob request.
Addresses are path-style (``/{account}/{container}/{blob}``) or host-style
(``{account}.blob.{domain}/{container}/{blob}``).
"""

from __future__ import annotations

import itertools
import logging
import re
from xml.etree import ElementTree

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from controlplane.blobstore import sas
from controlplane.blobstore.backends import TooLarge, blob_backend, read_chunks
from controlplane.blobstore.models import Blob, StagedBlock, StorageAccount, new_blob_etag
from controlplane.blobstore.paths import HOST_STYLE, UnsafePath, check_blob_name

log = logging.getLogger(__name__)

CONTAINER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
API_VERSION = "2021-08-06"
META_PREFIX = "HTTP_X_MS_META_"
MAX_BLOCK_LIST_BYTES = 4 * 1024 * 1024


class BlobError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_xml(code: str, message: str) -> str:
    """Azure Storage's error body (also what nginx answers with in front of this server)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{_xml_text(message)}</Message></Error>"
    )


def error_response(status: int, code: str, message: str, head: bool = False) -> HttpResponse:
    body = error_xml(code, message)
    response = HttpResponse(b"" if head else body, status=status, content_type="application/xml")
    response["x-ms-error-code"] = code
    response["x-ms-version"] = API_VERSION
    return response


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


@csrf_exempt
def blob_service(request, path: str = ""):
    head = request.method == "HEAD"
    try:
        account, container, blob = _address(request, path)
        return _dispatch(request, account, container, blob)
    except BlobError as exc:
        return error_response(exc.status, exc.code, exc.message, head=head)


def _address(request, path: str) -> tuple[StorageAccount, str, str | None]:
    host = request.get_host().rsplit(":", 1)[0]
    if match := HOST_STYLE.match(host):
        account_name, rest = match["account"].lower(), path
    else:
        account_name, _, rest = path.partition("/")
    container, _, blob_name = rest.partition("/")
    blob = blob_name or None
    if not CONTAINER_NAME.match(container):
        raise BlobError(400, "InvalidResourceName", "The container name is invalid.")
    if blob is not None:
        try:
            check_blob_name(blob)
        except UnsafePath as exc:
            raise BlobError(400, "InvalidResourceName", str(exc)) from None
    account = StorageAccount.objects.filter(name=account_name).first()
    if account is None:
        # Same answer as a bad signature: whether an account exists is not disclosed.
        raise _forbidden()
    return account, container, blob


def _forbidden() -> BlobError:
    return BlobError(
        403,
        "AuthenticationFailed",
        "Server failed to authenticate the request. Make sure the SAS is valid, unexpired "
        "and grants this operation on this resource.",
    )


def _authorize(request, account, container, target, needed: str) -> None:
    try:
        sas.verify(account.key, request.GET, account.name, container, target, needed)
    except sas.SasError as exc:
        log.info("blob request refused: %s", exc)  # the reason, never the signature
        raise _forbidden() from None


def _dispatch(request, account, container, blob):
    comp, restype, method = request.GET.get("comp"), request.GET.get("restype"), request.method
    if blob is None:
        if restype != "container":
            raise BlobError(400, "InvalidQueryParameterValue", "restype=container is required.")
        if comp == "list" and method == "GET":
            prefix = request.GET.get("prefix") or None
            _authorize(request, account, container, prefix, "l")
            return list_blobs(request, account, container)
        if comp is None and method in ("GET", "HEAD"):
            _authorize(request, account, container, None, "r")
            return _with_common_headers(HttpResponse(status=200), etag=None)
        if comp is None and method == "PUT":
            # Containers exist implicitly; creating one is accepted and changes nothing.
            _authorize(request, account, container, None, "c")
            return _with_common_headers(HttpResponse(status=201), etag=None)
        raise BlobError(405, "UnsupportedHttpVerb", "The operation is not supported here.")

    handlers = {
        ("PUT", None): (put_blob, "w"),
        ("PUT", "block"): (put_block, "w"),
        ("PUT", "blocklist"): (put_block_list, "w"),
        ("PUT", "metadata"): (set_metadata, "w"),
        ("GET", None): (get_blob, "r"),
        ("HEAD", None): (get_blob, "r"),
        ("DELETE", None): (delete_blob, "d"),
    }
    if (method, comp) not in handlers:
        raise BlobError(405, "UnsupportedHttpVerb", "The operation is not supported here.")
    handler, needed = handlers[(method, comp)]
    _authorize(request, account, container, blob, needed)
    return handler(request, account, container, blob)


# --------------------------------------------------------------------------------------------
# Blob operations
# --------------------------------------------------------------------------------------------


# A refused body is read and dropped up to this size, so the client hears the 413 instead
# of a reset connection; past it the connection is closed on the sender.
DRAIN_LIMIT = 64 * 1024 * 1024


def _content_length(request, limit: int) -> int:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BlobError(400, "InvalidHeaderValue", "Content-Length is not a number.") from None
    if length > limit:
        _drain(request, length)
        raise _too_large(limit)
    return length


def _drain(request, length: int) -> None:
    if length <= DRAIN_LIMIT:
        for _ in read_chunks(request, length):
            pass


def _too_large(limit: int) -> BlobError:
    return BlobError(413, "RequestBodyTooLarge", f"The content is larger than {limit} bytes.")


def _store_body(request, limit: int):
    length = _content_length(request, limit)
    try:
        return blob_backend().put(read_chunks(request, length), limit)
    except TooLarge:
        raise _too_large(limit) from None


def _metadata_from(request) -> dict:
    # Azure metadata names are C# identifiers (no dashes). WSGI upper-cases header names, so
    # names come back lower-cased.
    return {
        key[len(META_PREFIX) :].lower(): value
        for key, value in request.META.items()
        if key.startswith(META_PREFIX)
    }


def _check_conditions(request, existing: Blob | None) -> None:
    if_match = request.headers.get("If-Match")
    if if_match and if_match.strip() != "*":
        if existing is None or if_match.strip().strip('"') != existing.etag:
            raise BlobError(412, "ConditionNotMet", "The condition specified is not met.")
    if if_match and if_match.strip() == "*" and existing is None:
        raise BlobError(412, "ConditionNotMet", "The condition specified is not met.")
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match and existing is not None:
        if if_none_match.strip() == "*":
            raise BlobError(409, "BlobAlreadyExists", "The specified blob already exists.")
        if if_none_match.strip().strip('"') == existing.etag:
            raise BlobError(412, "ConditionNotMet", "The condition specified is not met.")


def _commit(request, account, container, name, stored) -> Blob:
    """Point the blob's name at new content, in one transaction with its properties."""
    content_type = (
        request.headers.get("x-ms-blob-content-type")
        or request.headers.get("Content-Type")
        or "application/octet-stream"
    )
    with transaction.atomic():
        existing = (
            Blob.objects.select_for_update()
            .filter(account=account, container=container, name=name)
            .first()
        )
        _check_conditions(request, existing)
        blob = existing or Blob(account=account, container=container, name=name)
        blob.digest, blob.size, blob.content_md5 = stored.digest, stored.size, stored.md5
        blob.content_type = content_type[:255]
        blob.metadata = _metadata_from(request)
        blob.etag = new_blob_etag()
        blob.save()
        StagedBlock.objects.filter(account=account, container=container, name=name).delete()
    return blob


def put_blob(request, account, container, name):
    if request.headers.get("x-ms-blob-type", "BlockBlob") != "BlockBlob":
        raise BlobError(400, "InvalidHeaderValue", "Only block blobs are supported.")
    stored = _store_body(request, settings.WEIR_BLOB_MAX_UPLOAD)
    blob = _commit(request, account, container, name, stored)
    response = _with_common_headers(HttpResponse(status=201), etag=blob.etag, blob=blob)
    response["Content-MD5"] = stored.md5
    return response


def put_block(request, account, container, name):
    block_id = request.GET.get("blockid", "")
    if not block_id or len(block_id) > 128:
        raise BlobError(400, "InvalidQueryParameterValue", "blockid is missing or too long.")
    stored = _store_body(request, settings.WEIR_BLOB_MAX_UPLOAD)
    StagedBlock.objects.update_or_create(
        account=account,
        container=container,
        name=name,
        block_id=block_id,
        defaults={"digest": stored.digest, "size": stored.size},
    )
    response = _with_common_headers(HttpResponse(status=201), etag=None)
    response["Content-MD5"] = stored.md5
    return response


def put_block_list(request, account, container, name):
    _content_length(request, MAX_BLOCK_LIST_BYTES)
    try:
        root = ElementTree.fromstring(request.read(MAX_BLOCK_LIST_BYTES))
    except ElementTree.ParseError:
        raise BlobError(400, "InvalidXmlDocument", "The block list is not valid XML.") from None
    wanted = [element.text or "" for element in root if element.tag in ("Latest", "Uncommitted")]
    if len(wanted) != len(root):
        raise BlobError(
            400, "InvalidBlockList", "Only Latest and Uncommitted blocks can be committed."
        )
    staged = {
        block.block_id: block
        for block in StagedBlock.objects.filter(
            account=account, container=container, name=name, block_id__in=wanted
        )
    }
    missing = [block_id for block_id in wanted if block_id not in staged]
    if missing:
        raise BlobError(400, "InvalidBlockList", f"Block {missing[0]} was never uploaded.")
    total = sum(staged[block_id].size for block_id in wanted)
    if total > settings.WEIR_BLOB_MAX_SIZE:
        raise _too_large(settings.WEIR_BLOB_MAX_SIZE)
    store = blob_backend()

    def chunks():
        for block_id in wanted:
            with store.open(staged[block_id].digest) as part:
                yield from read_chunks(part)

    stored = store.put(chunks(), settings.WEIR_BLOB_MAX_SIZE)
    blob = _commit(request, account, container, name, stored)
    return _with_common_headers(HttpResponse(status=201), etag=blob.etag, blob=blob)


def set_metadata(request, account, container, name):
    with transaction.atomic():
        blob = _existing(account, container, name, lock=True)
        _check_conditions(request, blob)
        blob.metadata = _metadata_from(request)
        blob.etag = new_blob_etag()
        blob.save(update_fields=["metadata", "etag", "modified_at"])
    return _with_common_headers(HttpResponse(status=200), etag=blob.etag, blob=blob)


def delete_blob(request, account, container, name):
    with transaction.atomic():
        blob = _existing(account, container, name, lock=True)
        _check_conditions(request, blob)
        blob.delete()
    return _with_common_headers(HttpResponse(status=202), etag=None)


def _existing(account, container, name, lock=False) -> Blob:
    queryset = Blob.objects.select_for_update() if lock else Blob.objects
    blob = queryset.filter(account=account, container=container, name=name).first()
    if blob is None:
        raise BlobError(404, "BlobNotFound", "The specified blob does not exist.")
    return blob


RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def get_blob(request, account, container, name):
    blob = _existing(account, container, name)
    _check_conditions(request, blob)
    spec = request.headers.get("x-ms-range") or request.headers.get("Range")
    start, end, status = 0, blob.size - 1, 200
    if spec:
        match = RANGE.match(spec.strip())
        if not match:
            raise BlobError(400, "InvalidRange", "The range is not bytes=start-end.")
        start = int(match[1])
        end = min(int(match[2]) if match[2] else blob.size - 1, blob.size - 1)
        if start >= blob.size or start > end:
            raise BlobError(416, "InvalidRange", "The range specified is invalid.")
        status = 206
    length = end - start + 1
    if request.method == "HEAD":
        response = HttpResponse(status=200)
    else:
        response = StreamingHttpResponse(_stream(blob.digest, start, length), status=status)
    response["Content-Length"] = str(blob.size if request.method == "HEAD" else length)
    response["Content-Type"] = blob.content_type
    response["Accept-Ranges"] = "bytes"
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
    elif blob.content_md5:
        response["Content-MD5"] = blob.content_md5
    response["x-ms-blob-type"] = "BlockBlob"
    response["x-ms-creation-time"] = http_date(blob.created_at.timestamp())
    response["x-ms-lease-status"] = "unlocked"
    response["x-ms-lease-state"] = "available"
    response["x-ms-server-encrypted"] = "false"
    for key, value in blob.metadata.items():
        response[f"x-ms-meta-{key}"] = value
    return _with_common_headers(response, etag=blob.etag, blob=blob)


def _stream(digest: str, start: int, length: int):
    with blob_backend().open(digest) as handle:
        handle.seek(start)
        yield from read_chunks(handle, length)


def _with_common_headers(response, etag: str | None, blob: Blob | None = None):
    response["x-ms-version"] = API_VERSION
    if etag:
        response["ETag"] = f'"{etag}"'
    if blob is not None:
        response["Last-Modified"] = http_date(blob.modified_at.timestamp())
    return response


# --------------------------------------------------------------------------------------------
# List Blobs
# --------------------------------------------------------------------------------------------


def list_blobs(request, account, container):
    prefix = request.GET.get("prefix", "")
    marker = request.GET.get("marker", "")
    delimiter = request.GET.get("delimiter", "")
    include = set(filter(None, request.GET.get("include", "").split(",")))
    try:
        page_size = min(int(request.GET.get("maxresults", "5000")), 5000)
    except ValueError:
        raise BlobError(400, "InvalidQueryParameterValue", "maxresults is not a number.") from None
    queryset = Blob.objects.filter(account=account, container=container, name__startswith=prefix)
    if marker:
        queryset = queryset.filter(name__gt=marker)
    root = ElementTree.Element(
        "EnumerationResults",
        ServiceEndpoint=request.build_absolute_uri("/"),
        ContainerName=container,
    )
    for tag, value in (("Prefix", prefix), ("Marker", marker), ("MaxResults", str(page_size))):
        ElementTree.SubElement(root, tag).text = value
    if delimiter:
        ElementTree.SubElement(root, "Delimiter").text = delimiter
    blobs_element = ElementTree.SubElement(root, "Blobs")
    seen_prefixes: set[str] = set()
    count, last = 0, None
    for blob in itertools.islice(queryset.order_by("name").iterator(), page_size * 10):
        if count >= page_size:
            break
        rest = blob.name[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest.split(delimiter, 1)[0] + delimiter
            if common not in seen_prefixes:
                seen_prefixes.add(common)
                element = ElementTree.SubElement(blobs_element, "BlobPrefix")
                ElementTree.SubElement(element, "Name").text = common
                count += 1
            last = blob.name
            continue
        _blob_element(blobs_element, blob, "metadata" in include)
        count, last = count + 1, blob.name
    more = last is not None and queryset.filter(name__gt=last).exists() and count >= page_size
    ElementTree.SubElement(root, "NextMarker").text = last if more else ""
    body = b'<?xml version="1.0" encoding="utf-8"?>' + ElementTree.tostring(root)
    return _with_common_headers(
        HttpResponse(body, status=200, content_type="application/xml"), etag=None
    )


def _blob_element(parent, blob: Blob, with_metadata: bool) -> None:
    element = ElementTree.SubElement(parent, "Blob")
    ElementTree.SubElement(element, "Name").text = blob.name
    properties = ElementTree.SubElement(element, "Properties")
    for tag, value in (
        ("Creation-Time", http_date(blob.created_at.timestamp())),
        ("Last-Modified", http_date(blob.modified_at.timestamp())),
        ("Etag", f'"{blob.etag}"'),
        ("Content-Length", str(blob.size)),
        ("Content-Type", blob.content_type),
        ("Content-MD5", blob.content_md5),
        ("BlobType", "BlockBlob"),
        ("LeaseStatus", "unlocked"),
        ("LeaseState", "available"),
        ("ServerEncrypted", "false"),
    ):
        ElementTree.SubElement(properties, tag).text = value
    if with_metadata:
        metadata = ElementTree.SubElement(element, "Metadata")
        for key, value in blob.metadata.items():
            ElementTree.SubElement(metadata, key).text = value
