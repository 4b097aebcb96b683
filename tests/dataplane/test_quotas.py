"""Per-credential scoring quotas: the token bucket's arithmetic, the limits shared by forked
processes, and a real two-process router enforcing them, with rotation overlap windows and
the usage it reports."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

import pytest
import redis
import requests

from contracts.routing import (
    PRIMARY_KEY,
    ROUTES,
    SECONDARY_KEY,
    DeploymentRoute,
    EndpointRoute,
    QuotaRoute,
    RetiredKey,
    changed,
    usage_key,
)
from dataplane.router.quotas import Quota
from dataplane.router.slots import SharedCounters, admit, available
from tests.dataplane.conftest import start_router
from tests.dataplane.test_router_processes import FEED, wait_for

SECOND = 1_000_000_000
FIFTH = SECOND // 5  # 5 requests per second


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


#
# The bucket's arithmetic
#
def test_a_full_bucket_admits_its_burst_at_once_then_says_how_long_to_wait():
    stamp, now = 0, 100 * SECOND
    for _ in range(5):
        stamp, wait = admit(stamp, now, FIFTH, 5)
        assert wait == 0
    assert available(stamp, now, FIFTH, 5) == 0
    kept, wait = admit(stamp, now, FIFTH, 5)
    assert kept == stamp and wait == FIFTH  # the next token comes in 0.2 s


def test_tokens_come_back_at_the_rate_and_never_beyond_the_burst():
    now = 100 * SECOND
    stamp = now + 5 * FIFTH  # emptied at ``now``
    assert available(stamp, now + FIFTH // 2, FIFTH, 5) == 0
    assert available(stamp, now + FIFTH, FIFTH, 5) == 1
    assert available(stamp, now + 3 * FIFTH, FIFTH, 5) == 3
    assert available(stamp, now + 60 * SECOND, FIFTH, 5) == 5
    # Long idle: a burst again, not a minute's worth of tokens.
    later = now + 60 * SECOND
    for _ in range(5):
        stamp, wait = admit(stamp, later, FIFTH, 5)
        assert wait == 0
    assert admit(stamp, later, FIFTH, 5)[1] == FIFTH


def test_a_steady_rate_is_admitted_and_a_faster_one_is_not():
    stamp, now = 0, 100 * SECOND
    for step in range(50):  # exactly 5 per second: always a token
        stamp, wait = admit(stamp, now + step * FIFTH, FIFTH, 1)
        assert wait == 0
    refused = 0
    for step in range(50):  # 10 per second: every other one
        stamp, wait = admit(stamp, now + 10 * SECOND + step * FIFTH // 2, FIFTH, 1)
        refused += wait > 0
    assert refused == 25


def test_a_quota_without_a_burst_gets_one_second_of_its_rate():
    quota = Quota(SharedCounters(1, slots=4), "ws", "ep", PRIMARY_KEY)
    quota.configure(QuotaRoute(requests_per_second=2.5))
    assert quota.burst == 3 and quota.interval == 400_000_000
    quota.configure(QuotaRoute(requests_per_second=0.1))
    assert quota.burst == 1
    quota.configure(QuotaRoute(max_concurrent_requests=2))
    assert quota.interval == 0 and quota.concurrency == 2


#
# Shared by processes
#
def test_forked_processes_share_the_bucket_and_the_concurrency_limit():
    counters = SharedCounters(processes=2, slots=8)
    settings = QuotaRoute(requests_per_second=0.01, burst=5, max_concurrent_requests=3)
    pid = os.fork()
    if pid == 0:  # another serving process: takes 3, holds them, and dies
        counters.bind(1)
        quota = Quota(counters, "ws", "ep", PRIMARY_KEY)
        quota.configure(settings)
        code = 0 if all(quota.acquire() is None for _ in range(3)) else 1
        os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    quota = Quota(counters, "ws", "ep", PRIMARY_KEY)
    quota.configure(settings)
    assert quota.acquire() == ("concurrency", 1.0)  # the other process holds all 3
    counters.forget(1)  # it died: what it held no longer counts, the tokens stay spent
    assert quota.acquire() is None and quota.acquire() is None
    limit, wait = quota.acquire()
    assert limit == "rate" and 99 < wait <= 100
    assert quota.tokens() == 0 and quota.throttled == 2 and quota.requests == 2
    quota.release()
    assert quota.in_flight == 1


#
# A real router
#
PRIMARY, SECONDARY, OLD = "quota-primary-key", "quota-secondary-key", "quota-old-key"
HOST = "quota.ws.localhost"


@pytest.fixture
def router(replica, tmp_path):
    script = tmp_path / "score.py"
    script.write_text(
        "import time\ndef init():\n    pass\n\n"
        "def run(raw):\n    time.sleep(float(raw or 0))\n    return {'ok': True}\n"
    )
    served = replica(script, tmp_path, concurrency=4)
    feed = redis.Redis.from_url(FEED)
    feed.delete(usage_key("ws", "quota"))
    entry = EndpointRoute(
        name="quota",
        workspace="ws",
        auth_mode="Key",
        key_digests=(digest(PRIMARY), digest(SECONDARY)),
        traffic={"blue": 100},
        deployments={
            "blue": DeploymentRoute(
                id="quota-blue",
                replicas=(f"127.0.0.1:{served.port}",),
                max_concurrent_requests_per_instance=4,
            )
        },
        quotas={
            PRIMARY_KEY: QuotaRoute(requests_per_second=0.05, burst=5),
            SECONDARY_KEY: QuotaRoute(max_concurrent_requests=1),
        },
        retired_keys=(RetiredKey(digest(OLD), PRIMARY_KEY, time.time() + 600),),
    )
    feed.hset(ROUTES, HOST, entry.to_json())
    process, url = start_router(FEED)
    yield url, feed, entry
    process.terminate()
    process.wait(timeout=30)
    feed.hdel(ROUTES, HOST)
    feed.delete(usage_key("ws", "quota"))


def score(url: str, key: str, data: str = "0") -> requests.Response:
    # A new connection each: the kernel spreads them over both serving processes.
    headers = {"Host": HOST, "Authorization": f"Bearer {key}", "Connection": "close"}
    return requests.post(f"{url}/score", data, headers=headers, timeout=10)


def test_a_two_process_router_enforces_quotas_and_overlap_windows(router):
    from concurrent.futures import ThreadPoolExecutor

    url, feed, entry = router
    # A retired key counts as the key it was while its window lasts.
    answers = [score(url, OLD)] + [score(url, PRIMARY) for _ in range(11)]
    codes = [a.status_code for a in answers]
    assert codes == [200] * 5 + [429] * 7, codes
    refused = answers[-1]
    assert refused.headers["retry-after"] == "20"  # 1 / 0.05 rps, in whole seconds
    assert "primaryKey" in refused.json()["message"]

    # The secondary key has no rate limit, one request at a time.
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(score, url, SECONDARY, "2.0")
        time.sleep(0.3)
        second = pool.submit(score, url, SECONDARY)
        assert second.result().status_code == 429
        assert second.result().headers["retry-after"] == "1"
        assert slow.result().status_code == 200
    assert [score(url, SECONDARY).status_code for _ in range(8)] == [200] * 8

    # Both processes report what they counted; summed, it is what the clients saw.
    def usage():
        reports = [json.loads(v) for v in feed.hgetall(usage_key("ws", "quota")).values()]
        totals = {}
        for report in reports:
            for credential, counted in report.items():
                for field in ("requestsLastMinute", "throttledLastMinute"):
                    totals[(credential, field)] = (
                        totals.get((credential, field), 0) + (counted[field])
                    )
        return len(reports), totals

    def settled():
        processes, totals = usage()
        return processes == 2 and totals.get((SECONDARY_KEY, "requestsLastMinute")) == 9

    wait_for(settled, timeout=5)
    assert usage()[1] == {
        (PRIMARY_KEY, "requestsLastMinute"): 5,
        (PRIMARY_KEY, "throttledLastMinute"): 7,
        (SECONDARY_KEY, "requestsLastMinute"): 9,
        (SECONDARY_KEY, "throttledLastMinute"): 1,
    }

    # A window that ends: once the router has it, the old key works until the end, then
    # is refused without any further change to the table.
    ends = time.time() + 3
    retired = (RetiredKey(digest(OLD), SECONDARY_KEY, ends),)
    feed.hset(ROUTES, HOST, dataclasses.replace(entry, retired_keys=retired).to_json())
    feed.publish(changed(feed), HOST)
    wait_for(lambda: score(url, OLD).json() == {"ok": True} and time.time() < ends - 0.5)
    wait_for(lambda: score(url, OLD).status_code == 401, timeout=5)
    assert time.time() >= ends
