"""The Blob REST API subset Azure's SDKs use: Put Blob, Put Block, Put Block List, Get and
Head Blob (with ranges), Set Blob Metadata, Delete Blob, List Blobs, container properties.

Every request carries a SAS that Weir signed; nothing else authorizes a blob request.
Addresses are path-style (``/{account}/{container}/{blob}``) or host-style
(``{account}.blob.{domain}/{container}/{blob}``).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import re
import sys
from xml.etree import ElementTree

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.http import http_date, parse_http_date_safe
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
_PRINTABLE = re.compile(r"[^\x20-\x7e]")


class BlobError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def error_xml(code: str, message: str) -> str:
    """Azure Storage's error body (also what nginx answers with in front of this server)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{_xml_text(message)}</Message></Error>"
    )


def error_response(
    status: int, code: str, message: str, head: bool = False, headers: dict | None = None
) -> HttpResponse:
    body = error_xml(code, message)
    if head or status == 304:  # no body: a HEAD's is never sent, a 304 has none
        body = ""
    response = HttpResponse(body, status=status, content_type="application/xml")
    response["x-ms-error-code"] = code
    response["x-ms-version"] = API_VERSION
    for name, value in (headers or {}).items():
        response[name] = value
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
        response = _dispatch(request, account, container, blob)
    except BlobError as exc:
        response = error_response(exc.status, exc.code, exc.message, head=head, headers=exc.headers)
    # Azure Storage echoes the client's request id on every answer; clients log it.
    if client_id := request.headers.get("x-ms-client-request-id"):
        response["x-ms-client-request-id"] = _PRINTABLE.sub("", client_id)[:1024]
    return response


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


def _authorize(request, account, container, target, needed: str) -> sas.Grant:
    try:
        return sas.verify(account.key, request.GET, account.name, container, target, needed)
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
            grant = _authorize(request, account, container, prefix, "l")
            return list_blobs(request, account, container, grant)
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


def _check_conditions(request, existing: Blob | None, read: bool = False) -> None:
    """Azure's conditional headers, evaluated in RFC 9110's order. A read whose blob is not
    modified is a 304; any other unmet condition is a 412, except If-None-Match: * on a
    write to an existing blob (409 BlobAlreadyExists)."""
    headers = request.headers
    if_match, if_none_match = headers.get("If-Match"), headers.get("If-None-Match")
    modified = int(existing.modified_at.timestamp()) if existing else None  # HTTP's seconds
    if if_match:
        if existing is None or not _etag_matches(if_match, existing.etag):
            raise _condition_not_met(412)
    elif (since := parse_http_date_safe(headers.get("If-Unmodified-Since") or "")) is not None:
        if modified is not None and modified > since:
            raise _condition_not_met(412)
    if if_none_match:
        if existing is not None and _etag_matches(if_none_match, existing.etag):
            if if_none_match.strip() == "*" and not read:
                raise BlobError(409, "BlobAlreadyExists", "The specified blob already exists.")
            raise _condition_not_met(304 if read else 412)
    elif (since := parse_http_date_safe(headers.get("If-Modified-Since") or "")) is not None:
        if modified is not None and modified <= since:
            raise _condition_not_met(304 if read else 412)


def _etag_matches(header: str, etag: str) -> bool:
    tags = {tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")}
    return "*" in tags or etag in tags


def _condition_not_met(status: int) -> BlobError:
    return BlobError(status, "ConditionNotMet", "The condition specified is not met.")


def _content_settings(request, whole_body: bool) -> dict:
    """The blob's content settings from x-ms-blob-content-* (and, for Put Blob, whose body is
    the content, from the request's own Content-Type, Content-Encoding, ... headers)."""
    headers = request.headers

    def setting(blob_header: str, own_header: str) -> str:
        return headers.get(blob_header) or (headers.get(own_header, "") if whole_body else "")

    return {
        "content_type": setting("x-ms-blob-content-type", "Content-Type")[:255]
        or "application/octet-stream",
        "content_encoding": setting("x-ms-blob-content-encoding", "Content-Encoding")[:255],
        "content_language": setting("x-ms-blob-content-language", "Content-Language")[:255],
        "content_disposition": setting("x-ms-blob-content-disposition", "Content-Disposition")[
            :1024
        ],
        "cache_control": setting("x-ms-blob-cache-control", "Cache-Control")[:255],
        "content_md5": _md5_header(headers.get("x-ms-blob-content-md5", "")),
    }


def _md5_header(value: str) -> str:
    """An MD5 the client sent: "" for none, else 16 bytes in base64."""
    value = value.strip()
    if not value:
        return ""
    try:
        if len(base64.b64decode(value, validate=True)) == 16:
            return value
    except ValueError:
        pass
    raise BlobError(
        400,
        "InvalidMd5",
        "The MD5 value specified in the request is invalid. The MD5 value must be 128 bits "
        "and Base64-encoded.",
    )


def _check_md5(request, stored, *, blob_md5: str = "") -> None:
    """The body must match the MD5 the client sent with it (Content-MD5) and, for Put Blob,
    the blob's MD5 it set (x-ms-blob-content-md5)."""
    sent = {_md5_header(request.headers.get("Content-MD5", "")), blob_md5} - {""}
    if sent - {stored.md5}:
        raise BlobError(
            400,
            "Md5Mismatch",
            "The MD5 value specified in the request did not match the MD5 value calculated "
            "by the server.",
        )


def _commit(request, account, container, name, stored, settings: dict) -> Blob:
    """Point the blob's name at new content, in one transaction with its properties."""
    with transaction.atomic():
        existing = (
            Blob.objects.select_for_update()
            .filter(account=account, container=container, name=name)
            .first()
        )
        _check_conditions(request, existing)
        blob = existing or Blob(account=account, container=container, name=name)
        blob.digest, blob.size = stored.digest, stored.size
        for field, value in settings.items():
            setattr(blob, field, value)
        blob.metadata = _metadata_from(request)
        blob.etag = new_blob_etag()
        blob.save()
        StagedBlock.objects.filter(account=account, container=container, name=name).delete()
    return blob


def put_blob(request, account, container, name):
    if request.headers.get("x-ms-blob-type", "BlockBlob") != "BlockBlob":
        raise BlobError(400, "InvalidHeaderValue", "Only block blobs are supported.")
    stored = _store_body(request, settings.WEIR_BLOB_MAX_UPLOAD)
    content = _content_settings(request, whole_body=True)
    _check_md5(request, stored, blob_md5=content["content_md5"])
    content["content_md5"] = stored.md5
    blob = _commit(request, account, container, name, stored, content)
    response = _written(HttpResponse(status=201), blob)
    response["Content-MD5"] = stored.md5
    return response


def put_block(request, account, container, name):
    block_id = request.GET.get("blockid", "")
    if not block_id or len(block_id) > 128:
        raise BlobError(400, "InvalidQueryParameterValue", "blockid is missing or too long.")
    stored = _store_body(request, settings.WEIR_BLOB_MAX_UPLOAD)
    _check_md5(request, stored)
    StagedBlock.objects.update_or_create(
        account=account,
        container=container,
        name=name,
        block_id=block_id,
        defaults={"digest": stored.digest, "size": stored.size},
    )
    response = _with_common_headers(HttpResponse(status=201), etag=None)
    response["Content-MD5"] = stored.md5
    response["x-ms-request-server-encrypted"] = "false"
    return response


def put_block_list(request, account, container, name):
    _content_length(request, MAX_BLOCK_LIST_BYTES)
    document = request.read(MAX_BLOCK_LIST_BYTES)
    try:
        root = ElementTree.fromstring(document)
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
    # The blob's Content-MD5 is only what the client set (x-ms-blob-content-md5), as in Azure.
    blob = _commit(
        request, account, container, name, stored, _content_settings(request, whole_body=False)
    )
    response = _written(HttpResponse(status=201), blob)
    # This MD5 is of the request's body, the block list (Azure's, too).
    response["Content-MD5"] = base64.b64encode(
        hashlib.md5(document, usedforsecurity=False).digest()
    ).decode()
    return response


def set_metadata(request, account, container, name):
    with transaction.atomic():
        blob = _existing(account, container, name, lock=True)
        _check_conditions(request, blob)
        blob.metadata = _metadata_from(request)
        blob.etag = new_blob_etag()
        blob.save(update_fields=["metadata", "etag", "modified_at"])
    return _written(HttpResponse(status=200), blob)


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
    _check_conditions(request, blob, read=True)
    spec = request.headers.get("x-ms-range") or request.headers.get("Range")
    start, end, status = 0, blob.size - 1, 200
    if spec:
        match = RANGE.match(spec.strip())
        if not match:
            raise BlobError(400, "InvalidRange", "The range is not bytes=start-end.")
        start = int(match[1])
        end = min(int(match[2]) if match[2] else blob.size - 1, blob.size - 1)
        if start >= blob.size or start > end:
            raise BlobError(
                416,
                "InvalidRange",
                "The range specified is invalid for the current size of the resource.",
                headers={"Content-Range": f"bytes */{blob.size}"},
            )
        status = 206
    length = end - start + 1
    range_md5 = None
    if status == 206 and request.headers.get("x-ms-range-get-content-md5", "").lower() == "true":
        if length > MAX_RANGE_MD5:
            raise BlobError(400, "OutOfRangeInput", "A range's MD5 is given for at most 4 MiB.")
        range_md5 = _range_md5(blob.digest, start, length)
    if request.method == "HEAD":
        response = HttpResponse(status=200)
    else:
        response = StreamingHttpResponse(_stream(blob.digest, start, length), status=status)
    response["Content-Length"] = str(blob.size if request.method == "HEAD" else length)
    response["Content-Type"] = blob.content_type
    for header, value in (
        ("Content-Encoding", blob.content_encoding),
        ("Content-Language", blob.content_language),
        ("Content-Disposition", blob.content_disposition),
        ("Cache-Control", blob.cache_control),
    ):
        if value:
            response[header] = value
    response["Accept-Ranges"] = "bytes"
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
        if range_md5:  # a range's Content-MD5 is the range's, and only when asked for
            response["Content-MD5"] = range_md5
    elif blob.content_md5:
        response["Content-MD5"] = blob.content_md5
    if blob.content_md5 and request.method == "GET":
        # The blob's own MD5, whatever the range: azure-storage-blob reads a download's here.
        response["x-ms-blob-content-md5"] = blob.content_md5
    response["x-ms-blob-type"] = "BlockBlob"
    if request.method == "HEAD":  # Get Blob Properties says the tier, Get Blob does not
        # One storage class, always at hand: Azure's default tier, which a blob has unless set.
        response["x-ms-access-tier"] = "Hot"
        response["x-ms-access-tier-inferred"] = "true"
    response["x-ms-creation-time"] = http_date(blob.created_at.timestamp())
    response["x-ms-lease-status"] = "unlocked"
    response["x-ms-lease-state"] = "available"
    response["x-ms-server-encrypted"] = "false"
    for key, value in blob.metadata.items():
        response[f"x-ms-meta-{key}"] = value
    return _with_common_headers(response, etag=blob.etag, blob=blob)


# Azure computes a range's MD5 (x-ms-range-get-content-md5) for ranges up to 4 MiB.
MAX_RANGE_MD5 = 4 * 1024 * 1024


def _range_md5(digest: str, start: int, length: int) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    for chunk in _stream(digest, start, length):
        md5.update(chunk)
    return base64.b64encode(md5.digest()).decode()


def _stream(digest: str, start: int, length: int):
    with blob_backend().open(digest) as handle:
        handle.seek(start)
        yield from read_chunks(handle, length)


def _written(response, blob: Blob):
    """The headers of an answer to a write: the blob's new ETag and Last-Modified, and
    whether the content was encrypted at rest (never, on Weir's own disk)."""
    response["x-ms-request-server-encrypted"] = "false"
    return _with_common_headers(response, etag=blob.etag, blob=blob)


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


def list_blobs(request, account, container, grant: sas.Grant):
    prefix = request.GET.get("prefix", "")
    marker = request.GET.get("marker", "")
    delimiter = request.GET.get("delimiter", "")
    include = set(filter(None, request.GET.get("include", "").split(",")))
    try:
        page_size = min(int(request.GET.get("maxresults", "5000")), 5000)
    except ValueError:
        raise BlobError(400, "InvalidQueryParameterValue", "maxresults is not a number.") from None
    if page_size < 1:
        raise BlobError(400, "OutOfRangeQueryParameterValue", "maxresults must be at least 1.")
    blobs = grant.visible(
        Blob.objects.filter(account=account, container=container, name__startswith=prefix)
    )
    entries = list(itertools.islice(_entries(blobs, prefix, delimiter, marker), page_size + 1))
    page, rest = entries[:page_size], entries[page_size:]
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
    for common, blob in page:
        if common is None:
            _blob_element(blobs_element, blob, "metadata" in include)
        else:
            ElementTree.SubElement(
                ElementTree.SubElement(blobs_element, "BlobPrefix"), "Name"
            ).text = common
    # The next page starts at the first name it holds (a prefix's first blob stands for it).
    ElementTree.SubElement(root, "NextMarker").text = rest[0][1].name if rest else ""
    body = b'<?xml version="1.0" encoding="utf-8"?>' + ElementTree.tostring(root)
    return _with_common_headers(
        HttpResponse(body, status=200, content_type="application/xml"), etag=None
    )


def _entries(blobs, prefix: str, delimiter: str, start: str, batch: int = 1000):
    """A listing's entries in name order, from the name ``start`` on: ``(None, blob)`` for a
    blob, and with a delimiter ``(common_prefix, first_blob)`` once for all the blobs under a
    common prefix, each of which counts as one entry of a page, as in Azure."""
    bound = {"name__gte": start} if start else {}
    while True:
        rows = list(blobs.filter(**bound).order_by("name")[:batch])
        for blob in rows:
            rest = blob.name[len(prefix) :]
            if delimiter and delimiter in rest:
                common = prefix + rest.split(delimiter, 1)[0] + delimiter
                yield common, blob
                # Jump past every blob under it, however many: one query, not one per blob.
                past = _after_prefix(common)
                if past is None:
                    return
                bound = {"name__gte": past}
                break
            yield None, blob
            bound = {"name__gt": blob.name}
        else:
            if len(rows) < batch:
                return


def _after_prefix(prefix: str) -> str | None:
    """The first name past every name that starts with ``prefix`` (the name column orders by
    code point): its last character, incremented. None when no name can come after."""
    if not prefix:
        return None
    last = ord(prefix[-1]) + 1
    if last > sys.maxunicode:  # no character follows: past the shorter prefix is past this one
        return _after_prefix(prefix[:-1])
    if 0xD800 <= last <= 0xDFFF:  # surrogates are not characters; the next one is
        last = 0xE000
    return prefix[:-1] + chr(last)


def _blob_element(parent, blob: Blob, with_metadata: bool) -> None:
    element = ElementTree.SubElement(parent, "Blob")
    ElementTree.SubElement(element, "Name").text = blob.name
    properties = ElementTree.SubElement(element, "Properties")
    for tag, value in (
        ("Creation-Time", http_date(blob.created_at.timestamp())),
        ("Last-Modified", http_date(blob.modified_at.timestamp())),
        ("Etag", blob.etag),  # bare in a listing; quoted in a header
        ("Content-Length", str(blob.size)),
        ("Content-Type", blob.content_type),
        ("Content-Encoding", blob.content_encoding),
        ("Content-Language", blob.content_language),
        ("Content-MD5", blob.content_md5),
        ("Cache-Control", blob.cache_control),
        ("Content-Disposition", blob.content_disposition),
        ("BlobType", "BlockBlob"),
        ("AccessTier", "Hot"),
        ("AccessTierInferred", "true"),
        ("LeaseStatus", "unlocked"),
        ("LeaseState", "available"),
        ("ServerEncrypted", "false"),
    ):
        ElementTree.SubElement(properties, tag).text = value
    if with_metadata:
        metadata = ElementTree.SubElement(element, "Metadata")
        for key, value in blob.metadata.items():
            ElementTree.SubElement(metadata, key).text = value
