"""Request counters shared by the router's serving processes.

Each replica takes ``maxConcurrentRequestsPerInstance`` requests at once and each deployment
admits ``2 * max * replicas``, whichever process a client's connection landed on. The
counts live in anonymous shared memory mapped before the processes fork: a table of named
slots (a replica's address, a deployment's admission count), each with one counter column
per process. A process only ever changes its own column, so when one dies the supervisor
zeroes that column and nothing stays counted. Taking a slot (check, then add) holds a lock
shared by the processes, for microseconds.

Each slot also has one shared stamp, written by whichever process holds the lock: a scoring
quota's token bucket, kept as GCRA's theoretical arrival time (``admit``) in nanoseconds of
the system-wide monotonic clock, which every process reads alike.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import multiprocessing
import time

KEY_BYTES = 16
EMPTY = bytes(KEY_BYTES)
SLOTS = 4096
STUCK_LOCK_SECONDS = 1.0

log = logging.getLogger("weir.router")


class SlotsFull(RuntimeError):
    pass


class SharedCounters:
    def __init__(self, processes: int, slots: int = SLOTS):
        self.processes = processes
        self.slots = slots
        self._lock = multiprocessing.get_context("fork").Lock()
        # The C semaphore itself: a context manager without Lock's Python-level wrappers.
        self.lock = self._lock._semlock
        self.keys = mmap.mmap(-1, slots * KEY_BYTES)
        self._counts = mmap.mmap(-1, slots * processes * 8)
        self.counts = memoryview(self._counts).cast("q")
        self._stamps = mmap.mmap(-1, slots * 8)
        self.stamps = memoryview(self._stamps).cast("q")
        self.me = 0
        self.cache: dict[str, tuple[int, bytes]] = {}

    def bind(self, index: int) -> None:
        """In a serving process after the fork: write column ``index`` from now on."""
        self.me = index
        self.cache = {}

    def forget(self, index: int) -> None:
        """In the supervisor: a process died; what it had counted no longer counts. If it
        died holding the lock (nobody holds it for a second otherwise), the lock is taken
        over and released here, so the others do not wait for it forever."""
        if not self.lock.acquire(True, STUCK_LOCK_SECONDS):
            log.warning("router process %d died holding the request lock; releasing it", index)
        try:
            for slot in range(self.slots):
                self.counts[slot * self.processes + index] = 0
        finally:
            self.lock.release()

    # All below: call with ``lock`` held.
    def slot(self, name: str) -> int:
        cached = self.cache.get(name)
        if cached is not None:
            slot, key = cached
            start = slot * KEY_BYTES
            if self.keys[start : start + KEY_BYTES] == key:
                return slot
        key = hashlib.blake2b(name.encode(), digest_size=KEY_BYTES).digest()
        slot = self._find(key)
        if slot is None:
            slot = self._find(EMPTY)
            if slot is None:
                slot = self._reclaim()
            start = slot * KEY_BYTES
            self.keys[start : start + KEY_BYTES] = key
            self.stamps[slot] = 0
        self.cache[name] = (slot, key)
        return slot

    def total(self, slot: int) -> int:
        start = slot * self.processes
        return sum(self.counts[start : start + self.processes])

    def add(self, slot: int, delta: int) -> None:
        self.counts[slot * self.processes + self.me] += delta

    def _find(self, key: bytes) -> int | None:
        offset = self.keys.find(key)
        while offset != -1 and offset % KEY_BYTES:
            offset = self.keys.find(key, offset + 1)
        return None if offset == -1 else offset // KEY_BYTES

    def _reclaim(self) -> int:
        """Free every slot nobody counts on (replicas and deployments long gone) and whose
        token bucket, if it is one, has filled up again (forgetting it loses nothing)."""
        now = time.monotonic_ns()
        freed = [
            slot for slot in range(self.slots) if self.total(slot) == 0 and self.stamps[slot] <= now
        ]
        if not freed:
            raise SlotsFull(f"all {self.slots} request slots are in use")
        for slot in freed:
            start = slot * KEY_BYTES
            self.keys[start : start + KEY_BYTES] = EMPTY
        return freed[0]


def admit(stamp: int, now: int, interval: int, burst: int) -> tuple[int, int]:
    """One request against a token bucket refilled one token per ``interval`` (ns) holding
    at most ``burst``, in GCRA form: ``stamp`` is when the bucket will be full again (the
    theoretical arrival time; 0 for a new one). Returns the stamp to store and 0 when the
    request is admitted, or ``stamp`` unchanged and the nanoseconds until a token is
    available when it is not."""
    due = max(stamp, now) + interval
    wait = due - now - burst * interval
    if wait > 0:
        return stamp, wait
    return due, 0


def available(stamp: int, now: int, interval: int, burst: int) -> int:
    """Whole tokens in the bucket at ``now``: requests admitted at once from here."""
    if stamp <= now:
        return burst
    return max(burst - -(-(stamp - now) // interval), 0)
