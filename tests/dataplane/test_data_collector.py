"""The replica's data collector: Azure's record fields and blob layout, sampling, batching,
and dropping (never blocking) when the blob store cannot keep up."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime

import pytest

from dataplane.http import Headers, Response
from dataplane.inference.collector import Collector, Config, collections_of, folder

SOURCE = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices"
    "/workspaces/ws/onlineEndpoints/ep/deployments/blue"
)
# 2024-03-05 18:16:25 UTC
MOMENT = datetime(2024, 3, 5, 18, 16, 25, tzinfo=UTC).timestamp()


def config(collections=None, rolling="Hour") -> Config:
    data_collector = {
        "collections": collections
        or {
            "request": {"dataCollectionMode": "Enabled"},
            "response": {"dataCollectionMode": "Enabled"},
        },
        "rollingRate": rolling,
    }
    document = {"url": "https://x/a/c/d?sig=s", "source": SOURCE, "dataCollector": data_collector}
    return Config.from_json(json.dumps(document))


class Blobs:
    """Where the collector writes in these tests: blob name -> the records in it."""

    def __init__(self):
        self.written: dict[str, list[dict]] = {}

    def __call__(self, name: str, content: bytes) -> None:
        assert content.endswith(b"\n")
        self.written[name] = [json.loads(line) for line in content.splitlines()]

    def records(self, collection: str) -> list[dict]:
        found = []
        for name, records in self.written.items():
            if name.startswith(collection + "/"):
                found += records
        return found


def score(collector: Collector, body: bytes, answer: bytes, request_id: str, **headers) -> None:
    response = Response(
        200, answer, [("content-type", "application/json"), ("x-request-id", request_id)]
    )
    collector.collect("POST", "/score", Headers(headers.items()), body, response)


def test_only_enabled_payload_collections_are_collected():
    assert collections_of(None) == {}
    assert collections_of(
        {
            "collections": {
                "request": {"dataCollectionMode": "Enabled", "samplingRate": 0.25},
                "response": {"dataCollectionMode": "Disabled"},
                "model_outputs": {"dataCollectionMode": "Enabled"},
                "custom_table": {"dataCollectionMode": "Enabled"},
                "model_inputs": None,
            }
        }
    ) == {"request": ("request", 0.25), "model_outputs": ("response", 1.0)}
    assert Config.from_json(json.dumps({"url": "u", "dataCollector": {"collections": {}}})) is None


@pytest.mark.parametrize(
    ("rolling", "expected"),
    [
        ("Year", "2024"),
        ("Month", "2024/03"),
        ("Day", "2024/03/05"),
        ("Hour", "2024/03/05/18"),
        ("Minute", "2024/03/05/18/16"),
        (None, "2024/03/05/18"),
    ],
)
def test_the_time_folders_follow_the_rolling_rate(rolling, expected):
    assert folder(rolling, MOMENT) == expected


def test_a_batch_is_one_jsonl_blob_per_collection_in_azures_layout():
    blobs = Blobs()
    collector = Collector(config(), blobs, clock=lambda: MOMENT)
    for number in range(5):
        score(
            collector,
            json.dumps({"data": [[number, 2]]}).encode(),
            f"[{number}.5]".encode(),
            f"id-{number}",
            **{"content-type": "application/json"},
        )
    collector.flush()

    assert len(blobs.written) == 2
    for name in blobs.written:
        collection, yyyy, mm, dd, hh, file = name.split("/")
        assert (yyyy, mm, dd, hh) == ("2024", "03", "05", "18")
        assert collection in ("request", "response") and file.endswith(".jsonl")
    requests, responses = blobs.records("request"), blobs.records("response")
    assert [r["data"] for r in requests] == [{"data": [[n, 2]]} for n in range(5)]
    assert [r["data"] for r in responses] == [[n + 0.5] for n in range(5)]
    first = requests[0]
    assert first["specversion"] == "1.0"
    assert first["type"] == "azureml.inference.request"
    assert first["source"] == SOURCE
    assert first["datacontenttype"] == "application/json"
    assert first["time"] == "2024-03-05T18:16:25Z"
    assert (first["path"], first["method"]) == ("/score", "POST")
    assert first["contentrange"] == "bytes 0-17/18"
    assert first["correlationid"] == first["xrequestid"] == "id-0"
    assert first["modelversion"] == "default"
    assert responses[0]["type"] == "azureml.inference.response"
    assert "path" not in responses[0]
    assert [r["xrequestid"] for r in responses] == [f"id-{n}" for n in range(5)]
    assert len({r["id"] for r in requests + responses}) == 10
    assert "weir_data_collector_blobs_total 2" in collector.metrics()


def test_model_inputs_and_outputs_are_the_same_two_streams_under_their_names():
    blobs = Blobs()
    names = {
        "model_inputs": {"dataCollectionMode": "Enabled"},
        "model_outputs": {"dataCollectionMode": "Enabled"},
    }
    collector = Collector(config(names, rolling="Day"), blobs, clock=lambda: MOMENT)
    score(collector, b"plain words", b"\xff\xfe", "r1", **{"content-type": "text/plain"})
    collector.flush()
    (inputs,) = blobs.records("model_inputs")
    (outputs,) = blobs.records("model_outputs")
    assert inputs["type"] == "azureml.inference.model_inputs"
    assert (inputs["data"], inputs["datacontenttype"]) == ("plain words", "text/plain")
    # Bytes that are not text go as CloudEvents' data_base64.
    assert outputs["data_base64"] == "//4="
    assert all(name.count("/") == 4 for name in blobs.written)  # collection/yyyy/MM/dd/file


def test_sampling_keeps_a_share_and_both_halves_of_each_sampled_request():
    blobs = Blobs()
    collections = {
        "request": {"dataCollectionMode": "Enabled", "samplingRate": 0.3},
        "response": {"dataCollectionMode": "Enabled", "samplingRate": 0.3},
    }
    collector = Collector(config(collections), blobs, sample=random.Random(7).random)
    for number in range(1000):
        score(collector, b"{}", b"{}", f"id-{number}")
    collector.flush()
    kept = [r["xrequestid"] for r in blobs.records("request")]
    assert 230 < len(kept) < 370
    assert [r["xrequestid"] for r in blobs.records("response")] == kept

    nothing = Collector(config({"request": {"dataCollectionMode": "Enabled", "samplingRate": 0}}))
    score(nothing, b"{}", b"{}", "x")
    assert not nothing._queue


def test_a_stuck_blob_store_fills_the_queue_and_records_are_dropped_not_waited_for():
    release = threading.Event()

    def stuck(name, content):
        release.wait(30)
        raise OSError("the blob store did not answer")

    collector = Collector(config(), stuck, flush_interval=0.01, max_queued_requests=10)
    collector.start()
    try:
        score(collector, b"{}", b"{}", "first")
        deadline = time.monotonic() + 10
        while collector._queue and time.monotonic() < deadline:  # the thread took it
            time.sleep(0.01)
        for number in range(25):  # the thread is stuck writing: these wait in the queue
            score(collector, b"{}", b"{}", f"id-{number}")
        assert len(collector._queue) == 10
        assert collector.dropped[("request", "queue_full")] == 15
    finally:
        release.set()
        collector.stop()
    metrics = collector.metrics()
    # The first request and the ten queued ones could not be written either.
    assert 'weir_data_collector_dropped_total{collection="request",reason="write_failed"} 11' in (
        metrics
    )
    assert 'weir_data_collector_dropped_total{collection="response",reason="queue_full"} 15' in (
        metrics
    )


def test_payloads_over_4_mb_are_counted_not_collected():
    blobs = Blobs()
    collector = Collector(config(), blobs)
    score(collector, b"x" * (4 * 1024 * 1024 + 1), b"{}", "big")
    collector.flush()
    assert blobs.written == {}
    assert collector.dropped[("request", "too_large")] == 1
