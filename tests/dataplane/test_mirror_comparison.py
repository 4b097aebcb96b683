"""Comparing a shadow's answer with the live one: the default rule, a tolerance, a path
(the JSONPath subset), what a path that selects nothing means, the rule on the routing
table's wire; and a real router whose shadow answers within a tolerance, counted as agreeing
under that tolerance and as disagreeing under the default rule."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import pytest
import redis
import requests

from contracts.comparison import EVERY, INDEX, KEY, MirrorComparison, parse_path, select
from contracts.metrics import MIRROR_AGREED, MIRRORED
from contracts.routing import ROUTES, DeploymentRoute, EndpointRoute
from dataplane.router.comparison import same_answer
from tests.dataplane.conftest import start_router
from tests.dataplane.test_router_minutes import KEY as SCORING_KEY
from tests.dataplane.test_router_minutes import reported
from tests.dataplane.test_router_processes import FEED, wait_for


def agree(live, shadow, rule=None, statuses=(200, 200)) -> bool:
    encode = lambda v: v if isinstance(v, bytes) else json.dumps(v).encode()  # noqa: E731
    return same_answer(statuses[0], encode(live), statuses[1], encode(shadow), rule)


def rule(tolerance=1e-6, path=None) -> MirrorComparison:
    return MirrorComparison.of(tolerance, path)


def test_the_default_rule_is_the_same_status_and_json_with_numbers_within_1e_6():
    assert agree({"p": [0.5, 2]}, {"p": [0.5 + 1e-7, 2.0]})
    assert not agree({"p": [0.5]}, {"p": [0.5001]})
    assert not agree({"p": 1}, {"p": 1}, statuses=(200, 424))
    assert not agree({"p": 1}, {"p": 1, "q": 2})
    assert not agree({"p": True}, {"p": 1})  # a boolean is not a number
    assert agree(b"plain text", b"plain text") and not agree(b"plain", b"text")


def test_a_tolerance_is_relative_to_the_live_value_and_absolute_below_1():
    one_percent = rule(0.01)
    assert agree({"p": [1000.0]}, {"p": [1009.0]}, one_percent)
    assert not agree({"p": [1000.0]}, {"p": [1011.0]}, one_percent)
    assert agree({"p": 0.001}, {"p": 0.0099}, one_percent)  # |diff| <= 0.01 below 1
    assert not agree({"p": 0.001}, {"p": 0.012}, one_percent)
    assert not agree({"label": "cat"}, {"label": "dog"}, rule(10))  # strings stay exact
    assert agree({"p": 3}, {"p": 3.0}, rule(0)) and not agree({"p": 3}, {"p": 3.0001}, rule(0))


def test_a_path_compares_only_what_it_selects():
    predictions = rule(0, "$.predictions")
    assert agree(
        {"predictions": [1, 2], "model": "v1"}, {"predictions": [1, 2], "model": "v2"}, predictions
    )
    assert not agree({"predictions": [1, 2]}, {"predictions": [1, 3]}, predictions)
    scores = rule(0.1, "$.results[*].score")
    live = {"results": [{"score": 1.0, "id": "a"}, {"score": 2.0, "id": "b"}]}
    assert agree(live, {"results": [{"score": 1.05, "id": "x"}, {"score": 2.1, "id": "y"}]}, scores)
    assert not agree(live, {"results": [{"score": 1.05}]}, scores)  # one fewer
    assert agree({"a": [5, 6]}, {"a": [0, 6.0]}, rule(0, "$.a[-1]"))


def test_a_path_that_selects_nothing_in_either_answer_is_a_disagreement():
    predictions = rule(0, "$.predictions")
    assert not agree({"other": 1}, {"other": 1}, predictions)
    assert not agree({"predictions": 1}, {"other": 1}, predictions)
    assert not agree({"other": 1}, {"predictions": 1}, predictions)
    assert not agree(b"not json", b"not json", predictions)
    assert not agree({"p": []}, {"p": []}, rule(0, "$.p[*]"))


def test_the_path_subset_parses_and_selects():
    assert parse_path("$") == ()
    assert parse_path("$.a['b c'][2][*].d_1.*") == (
        (KEY, "a"),
        (KEY, "b c"),
        (INDEX, 2),
        (EVERY, None),
        (KEY, "d_1"),
        (EVERY, None),
    )
    assert select({"b": 2, "a": 1}, parse_path("$[*]")) == [1, 2]  # objects in key order
    for bad in ("predictions", "$..a", "$[?(@.a)]", "$[1:2]", "$.", "$['a]", "$" + ".a" * 200):
        with pytest.raises(ValueError):
            parse_path(bad)


def test_the_rule_travels_in_the_routing_entry_and_old_entries_get_the_default():
    entry = EndpointRoute("e", "w", "Key", mirror_comparison=rule(0.01, "$.p[*]"))
    read = EndpointRoute.from_json(entry.to_json())
    assert read.mirror_comparison == entry.mirror_comparison
    assert read.mirror_comparison.steps == ((KEY, "p"), (EVERY, None))
    old = json.loads(EndpointRoute("e", "w", "Key").to_json())
    del old["mirrorComparison"]
    assert EndpointRoute.from_json(json.dumps(old)).mirror_comparison is None
    with pytest.raises(ValueError):
        MirrorComparison.of(-1)


TOLERANT_HOST = "tolerant.ws.localhost"
EXACT_HOST = "exact.ws.localhost"


@pytest.fixture
def shadow_within_a_percent(replica, tmp_path):
    """Two endpoints on the same replicas: blue answers 100.0, green 100.5 and another
    model name. One compares predictions within 1%, the other by the default rule."""
    script = (
        "def init():\n    pass\n\ndef run(raw):\n    return {'predictions': [%s], 'model': %r}\n"
    )
    live, shadow = tmp_path / "live.py", tmp_path / "shadow.py"
    live.write_text(script % ("100.0", "b"))
    shadow.write_text(script % ("100.5", "g"))
    blue, green = replica(live, tmp_path), replica(shadow, tmp_path)
    feed = redis.Redis.from_url(FEED)
    shadows = {}
    for host, comparison in (
        (TOLERANT_HOST, rule(0.01, "$.predictions")),
        (EXACT_HOST, None),
    ):
        shadows[host] = f"{host}-green-{uuid.uuid4()}"
        entry = EndpointRoute(
            name=host.split(".")[0],
            workspace="ws",
            auth_mode="Key",
            key_digests=(hashlib.sha256(SCORING_KEY.encode()).hexdigest(),),
            traffic={"blue": 100},
            mirror_traffic={"green": 100},
            mirror_comparison=comparison,
            deployments={
                "blue": DeploymentRoute(
                    id=f"{host}-blue-{uuid.uuid4()}", replicas=(f"127.0.0.1:{blue.port}",)
                ),
                "green": DeploymentRoute(id=shadows[host], replicas=(f"127.0.0.1:{green.port}",)),
            },
        )
        feed.hset(ROUTES, host, entry.to_json())
    process, url = start_router(FEED)
    yield url, feed, shadows
    process.terminate()
    process.wait(timeout=30)
    feed.hdel(ROUTES, TOLERANT_HOST, EXACT_HOST)


def test_a_shadow_within_tolerance_agrees_under_the_tolerance_and_not_under_the_default(
    shadow_within_a_percent,
):
    url, feed, shadows = shadow_within_a_percent
    started = time.time()
    for host in (TOLERANT_HOST, EXACT_HOST):
        headers = {"Host": host, "Authorization": f"Bearer {SCORING_KEY}", "Connection": "close"}
        for _ in range(5):
            answer = requests.post(f"{url}/score", "{}", headers=headers, timeout=10)
            assert answer.json() == {"predictions": [100.0], "model": "b"}
    for host in (TOLERANT_HOST, EXACT_HOST):
        wait_for(lambda h=host: reported(feed, shadows[h], started).get(MIRRORED) == 5, timeout=10)
    assert reported(feed, shadows[TOLERANT_HOST], started)[MIRROR_AGREED] == 5
    assert MIRROR_AGREED not in reported(feed, shadows[EXACT_HOST], started)
