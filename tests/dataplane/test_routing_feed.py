"""The router's table feed on a real Redis: announcements reach the routers of their own db
only (Redis's pub/sub ignores dbs; the channel names the db)."""

from __future__ import annotations

import os
import time

import redis

from contracts.routing import ALL, ROUTES, EndpointRoute, changed
from dataplane.router.table import RoutingTable

FEED = os.environ.get("WEIR_DATAPLANE_TEST_REDIS", "redis://127.0.0.1:6379/13")
HOST = "feed.ws.localhost"


def other_db(url: str) -> str:
    base, db = url.rsplit("/", 1)
    return f"{base}/{(int(db) + 1) % 16}"


def wait_for(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_announcements_reach_the_routers_of_their_own_db_only():
    feed = redis.Redis.from_url(FEED)
    neighbour = redis.Redis.from_url(other_db(FEED))
    feed.hdel(ROUTES, HOST)
    table = RoutingTable(FEED)
    stop = table.start()
    try:
        assert table.loaded.wait(5)
        assert table.lookup(HOST) is None
        feed.hset(
            ROUTES, HOST, EndpointRoute(name="feed", workspace="ws", auth_mode="Key").to_json()
        )
        # Another installation's announcement (same server, another db) is not heard ...
        neighbour.publish(changed(neighbour), ALL)
        neighbour.publish(changed(neighbour), HOST)
        assert not wait_for(lambda: table.lookup(HOST) is not None, timeout=1.0)
        # ... this db's is.
        feed.publish(changed(feed), HOST)
        assert wait_for(lambda: table.lookup(HOST) is not None)
        assert changed(feed) != changed(neighbour)
    finally:
        stop.set()
        feed.hdel(ROUTES, HOST)
