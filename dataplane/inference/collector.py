"""Azure's model data collector for one replica: payload logging of scored requests.

A deployment whose ``dataCollector`` enables the collections ``request`` and/or ``response``
(or ``model_inputs``/``model_outputs``, the same two streams) gets every sampled ``/score``
request's body and the answer's body written to the workspace's default blob store, in
Azure's layout: ``modelDataCollector/{endpoint}/{deployment}/{collection}/{yyyy}/{MM}/{dd}/
{HH}/{id}.jsonl`` (the folder depth follows ``rollingRate``), one CloudEvents-shaped JSON
record per line.

Scoring never waits on it: the request path only draws the sample and appends the two
bodies to a bounded in-memory queue; a background thread turns them into records and writes
one blob per collection and folder about once a second (Put Blob with a SAS that allows
writing under the deployment's directory only). A full queue, or a blob store that refuses
or does not answer, drops records and counts them (``weir_data_collector_dropped_total``).
Standard library only: it runs in the user's environment.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import ssl
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit
from urllib.request import Request as UrlRequest
from urllib.request import urlopen

log = logging.getLogger("weir.inference.collector")

# The replica's setting, written by the worker: JSON (see Config.from_json). It carries a
# SAS: never log it.
ENV = "WEIR_DATA_COLLECTOR"
# Collection name -> the stream it records. request/response are Azure's payload-logging
# names; model_inputs/model_outputs the names of its custom logging, taken as the same.
# The local agent's replicas serve the collector's /metrics on their socket's path + this.
METRICS_SUFFIX = ".metrics"
STREAMS = {
    "request": "request",
    "model_inputs": "request",
    "response": "response",
    "model_outputs": "response",
}
# rollingRate -> the folders under the collection (Azure's default: Hour).
ROLLING = {
    "Year": "%Y",
    "Month": "%Y/%m",
    "Day": "%Y/%m/%d",
    "Hour": "%Y/%m/%d/%H",
    "Minute": "%Y/%m/%d/%H/%M",
}
DEFAULT_ROLLING = "Hour"
# Azure writes payloads over 4 MB out of line; those are not collected here (counted).
MAX_PAYLOAD = 4 * 1024 * 1024
MAX_QUEUED_BYTES = 64 * 1024 * 1024
MAX_QUEUED_REQUESTS = 10_000
FLUSH_INTERVAL = 1.0
# A batch this large is written without waiting for the interval.
BATCH_BYTES = 4 * 1024 * 1024
PUT_TIMEOUT = 10.0
BLOB_API_VERSION = "2023-11-03"
WARN_EVERY = 30.0
JSON_TYPES = ("application/json", "text/json")


def collections_of(data_collector: dict | None) -> dict[str, tuple[str, float]]:
    """The collections a ``dataCollector`` enables that log payloads: name -> (stream,
    sampling rate). Other collections (custom logging) are not this collector's."""
    found = {}
    for name, collection in ((data_collector or {}).get("collections") or {}).items():
        stream = STREAMS.get(name)
        if stream is None or not collection:
            continue
        if collection.get("dataCollectionMode") != "Enabled":
            continue
        rate = collection.get("samplingRate")
        found[name] = (stream, 1.0 if rate is None else float(rate))
    return found


def folder(rolling_rate: str, moment: float) -> str:
    """The time folders a record written at ``moment`` (epoch seconds) goes under."""
    pattern = ROLLING.get(rolling_rate, ROLLING[DEFAULT_ROLLING])
    return time.strftime(pattern, time.gmtime(moment))


def timestamp(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


@dataclass
class Config:
    url: str  # the deployment's directory (modelDataCollector/{endpoint}/{deployment}) + SAS
    source: str  # the deployment's ARM id, the records' "source"
    collections: dict[str, tuple[str, float]]
    rolling_rate: str = DEFAULT_ROLLING
    model_version: str = "default"
    ca_bundle: str | None = None

    @classmethod
    def from_json(cls, text: str) -> Config | None:
        """{"url", "source", "dataCollector", "modelVersion", "caBundle"}; None when it
        enables no payload collection."""
        document = json.loads(text)
        data_collector = document.get("dataCollector") or {}
        collections = collections_of(data_collector)
        if not collections:
            return None
        return cls(
            url=document["url"],
            source=document.get("source", ""),
            collections=collections,
            rolling_rate=data_collector.get("rollingRate") or DEFAULT_ROLLING,
            model_version=document.get("modelVersion") or "default",
            ca_bundle=document.get("caBundle") or None,
        )

    @classmethod
    def from_environment(cls) -> Config | None:
        text = os.environ.get(ENV)
        return cls.from_json(text) if text else None


@dataclass
class Scored:
    """What the request path keeps of one scored request: the bytes, not yet records."""

    moment: float
    method: str
    path: str
    request_type: str
    request_body: bytes
    response_type: str
    response_body: bytes
    request_id: str
    collections: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.request_body) + len(self.response_body)


def _data(body: bytes, content_type: str) -> tuple[dict, str]:
    """The record's data fields for ``body``: JSON as JSON, other text as a string, other
    bytes as CloudEvents' ``data_base64``; and the content type to report."""
    mimetype = content_type.split(";")[0].strip().lower()
    json_like = not mimetype or mimetype in JSON_TYPES or mimetype.endswith("+json")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        encoded = base64.b64encode(body).decode()
        return {"data_base64": encoded}, content_type or "application/octet-stream"
    if json_like and text.strip():
        try:
            return {"data": json.loads(text)}, content_type or "application/json"
        except ValueError:
            pass
    return {"data": text}, content_type or "text/plain"


def records(scored: Scored, config: Config) -> list[tuple[str, dict]]:
    """(collection, record) for each collection ``scored`` was sampled into, with the fields
    Azure's collector writes."""
    made = []
    for name in scored.collections:
        stream = config.collections[name][0]
        body, content_type = (
            (scored.request_body, scored.request_type)
            if stream == "request"
            else (scored.response_body, scored.response_type)
        )
        data, datacontenttype = _data(body, content_type)
        record = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": config.source,
            "type": f"azureml.inference.{name}",
            "datacontenttype": datacontenttype,
            "time": timestamp(scored.moment),
            **data,
        }
        if stream == "request":
            record["path"] = scored.path
            record["method"] = scored.method
        size = len(body)
        record["contentrange"] = f"bytes 0-{max(size - 1, 0)}/{size}"
        record["correlationid"] = scored.request_id
        record["xrequestid"] = scored.request_id
        record["modelversion"] = config.model_version
        made.append((name, record))
    return made


class BlobWriter:
    """Put Blob into the directory a SAS URL names (Azure's Blob REST API)."""

    def __init__(self, url: str, ca_bundle: str | None = None, timeout: float = PUT_TIMEOUT):
        self.parts = urlsplit(url)
        self.context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None
        self.timeout = timeout

    def __call__(self, name: str, content: bytes) -> None:
        path = f"{self.parts.path.rstrip('/')}/{quote(name)}"
        url = urlunsplit((self.parts.scheme, self.parts.netloc, path, self.parts.query, ""))
        request = UrlRequest(
            url,
            data=content,
            method="PUT",
            headers={
                "x-ms-blob-type": "BlockBlob",
                "x-ms-version": BLOB_API_VERSION,
                "Content-Type": "application/jsonl",
            },
        )
        with urlopen(request, timeout=self.timeout, context=self.context) as response:
            response.read()


class Collector:
    """The queue between scoring and the blob store, and the thread that empties it."""

    def __init__(
        self,
        config: Config,
        write=None,
        *,
        flush_interval: float = FLUSH_INTERVAL,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        max_queued_requests: int = MAX_QUEUED_REQUESTS,
        sample=random.random,
        clock=time.time,
    ):
        self.config = config
        self.write = write or BlobWriter(config.url, config.ca_bundle)
        self.flush_interval = flush_interval
        self.max_queued_bytes = max_queued_bytes
        self.max_queued_requests = max_queued_requests
        self.sample = sample
        self.clock = clock
        self.instance = uuid.uuid4().hex[:8]
        self._queue: deque[Scored] = deque()
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._last_warning = 0.0
        # Counters: (collection, reason) -> records dropped; collection -> records written.
        self.dropped: Counter = Counter()
        self.written: Counter = Counter()
        self.blobs_written = 0

    # -- the request path: cheap, never raises, never blocks on I/O -----------------------
    def collect(self, method, path, request_headers, request_body, response) -> None:
        """Queue one answered scoring request, if the sample takes it."""
        try:
            draw = self.sample()
            chosen = [n for n, (_, rate) in self.config.collections.items() if draw < rate]
            if not chosen:
                return
            response_type = ""
            request_id = ""
            for name, value in response.headers:
                lower = name.lower()
                if lower == "content-type":
                    response_type = value
                elif lower == "x-request-id":
                    request_id = value
            scored = Scored(
                moment=self.clock(),
                method=method,
                path=path,
                request_type=request_headers.get("content-type", ""),
                request_body=bytes(request_body),
                response_type=response_type,
                response_body=bytes(response.body),
                request_id=request_id,
                collections=chosen,
            )
            if max(len(scored.request_body), len(scored.response_body)) > MAX_PAYLOAD:
                self._drop(chosen, "too_large")
                return
            with self._lock:
                if (
                    len(self._queue) >= self.max_queued_requests
                    or self._queued_bytes + scored.size > self.max_queued_bytes
                ):
                    full = True
                else:
                    full = False
                    self._queue.append(scored)
                    self._queued_bytes += scored.size
                    urgent = self._queued_bytes >= BATCH_BYTES
            if full:
                self._drop(chosen, "queue_full")
            elif urgent:
                self._wake.set()
        except Exception:  # collection must never fail a scoring request
            log.exception("data collector: a request could not be queued")

    def _drop(self, collections, reason: str, count: int = 1) -> None:
        with self._lock:
            for name in collections:
                self.dropped[(name, reason)] += count

    # -- the background thread ------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="data-collector", daemon=True)
        self._thread.start()
        names = ", ".join(sorted(self.config.collections))
        log.info("data collector on: %s (rolling %s)", names, self.config.rolling_rate)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self.flush()

    def stop(self, timeout: float = PUT_TIMEOUT) -> None:
        """Write what is queued, then stop the thread (a replica that stops)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()

    def flush(self) -> None:
        """Write everything queued: one blob per collection and time folder."""
        with self._lock:
            taken = list(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
        if not taken:
            return
        groups: dict[tuple[str, str], list[bytes]] = {}
        for scored in taken:
            where = folder(self.config.rolling_rate, scored.moment)
            for name, record in records(scored, self.config):
                line = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
                groups.setdefault((name, where), []).append(line.encode())
        for (name, where), lines in groups.items():
            blob = f"{name}/{where}/{uuid.uuid4()}.jsonl"
            try:
                self.write(blob, b"\n".join(lines) + b"\n")
            except Exception as exc:
                self._drop([name], "write_failed", len(lines))
                self._warn(name, len(lines), exc)
                continue
            with self._lock:
                self.written[name] += len(lines)
                self.blobs_written += 1

    def _warn(self, name: str, count: int, exc: Exception) -> None:
        # One line per WARN_EVERY at most; the reason without the URL (it holds the SAS).
        now = time.monotonic()
        if now - self._last_warning < WARN_EVERY:
            return
        self._last_warning = now
        reason = getattr(exc, "code", None) or type(exc).__name__
        log.warning(
            "data collector: %d %s record(s) dropped, the blob store refused them (%s)",
            count,
            name,
            reason,
        )

    # -- what it counted ------------------------------------------------------------------
    def metrics(self) -> str:
        """The counters in Prometheus' text format."""
        with self._lock:
            dropped, written, blobs = dict(self.dropped), dict(self.written), self.blobs_written
            queued = len(self._queue)
        lines = [
            "# HELP weir_data_collector_records_total Records written to the blob store",
            "# TYPE weir_data_collector_records_total counter",
        ]
        for name in sorted(self.config.collections):
            lines.append(
                f'weir_data_collector_records_total{{collection="{name}"}} {written.get(name, 0)}'
            )
        lines += [
            "# HELP weir_data_collector_dropped_total Records not collected, by reason "
            "(queue_full, write_failed, too_large)",
            "# TYPE weir_data_collector_dropped_total counter",
        ]
        for name in sorted(self.config.collections):
            for reason in ("queue_full", "write_failed", "too_large"):
                count = dropped.get((name, reason), 0)
                lines.append(
                    f'weir_data_collector_dropped_total{{collection="{name}",reason="{reason}"}}'
                    f" {count}"
                )
        lines += [
            "# HELP weir_data_collector_blobs_total Blobs (.jsonl files) written",
            "# TYPE weir_data_collector_blobs_total counter",
            f"weir_data_collector_blobs_total {blobs}",
            "# HELP weir_data_collector_queued Scored requests waiting to be written",
            "# TYPE weir_data_collector_queued gauge",
            f"weir_data_collector_queued {queued}",
        ]
        return "\n".join(lines) + "\n"
