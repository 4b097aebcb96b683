"""The routing table: a snapshot from Redis, then kept current by change notifications."""

from __future__ import annotations

import logging
import threading
import time

import redis

from contracts.routing import ALL, ROUTES, SIGNING_KEYS, EndpointRoute, changed

log = logging.getLogger("weir.router")

RECONNECT_DELAY = 1.0


class RoutingTable:
    def __init__(self, redis_url: str):
        self.redis_url = redis_url
        self.entries: dict[str, EndpointRoute] = {}
        # The same entries by (workspace, endpoint), lower-cased, for path-based URIs.
        self.paths: dict[tuple[str, str], EndpointRoute] = {}
        self.signing_keys: dict[str, str] = {}
        self.loaded = threading.Event()

    def lookup(self, host: str) -> EndpointRoute | None:
        return self.entries.get(host)

    def lookup_path(self, workspace: str, endpoint: str) -> EndpointRoute | None:
        return self.paths.get((workspace.lower(), endpoint.lower()))

    def _set(self, entries: dict[str, EndpointRoute]) -> None:
        # One assignment each: readers see the old table or the new one.
        self.entries = entries
        self.paths = {(e.workspace.lower(), e.name.lower()): e for e in entries.values()}

    def load_all(self, client: redis.Redis) -> None:
        entries = {
            k.decode(): EndpointRoute.from_json(v) for k, v in client.hgetall(ROUTES).items()
        }
        self._load_keys(client)
        self._set(entries)
        self.loaded.set()
        log.info("routing table loaded: %d endpoint(s)", len(entries))

    def _load_keys(self, client: redis.Redis) -> None:
        self.signing_keys = {
            k.decode(): v.decode() for k, v in client.hgetall(SIGNING_KEYS).items()
        }

    def apply_change(self, client: redis.Redis, host: str) -> None:
        if host == ALL:
            self.load_all(client)
            return
        raw = client.hget(ROUTES, host)
        entries = dict(self.entries)
        if raw is None:
            entries.pop(host, None)
        else:
            entries[host] = EndpointRoute.from_json(raw)
        self._load_keys(client)
        self._set(entries)

    def watch(self, stop: threading.Event) -> None:
        """Subscribe, load a full snapshot, then apply changes; on any Redis failure keep
        the table as it is and reconnect."""
        while not stop.is_set():
            try:
                client = redis.Redis.from_url(self.redis_url, socket_timeout=None)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                # Subscribe before the snapshot, so no change between the two is missed.
                pubsub.subscribe(changed(client))
                self.load_all(client)
                while not stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.apply_change(client, message["data"].decode())
            except (redis.RedisError, OSError) as exc:
                log.warning("routing feed unavailable (%s); serving the last table", exc)
                time.sleep(RECONNECT_DELAY)

    def start(self) -> threading.Event:
        stop = threading.Event()
        threading.Thread(target=self.watch, args=(stop,), name="routing-feed", daemon=True).start()
        return stop
