"""The router's data path on a real router process: refusals from the headers, bodies
streamed both ways in bounded memory, retries when a replica goes away, graceful stops.

Replicas are real: Weir's inference server, or a small HTTP server here that counts the
body bytes it gets and answers with the count."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import requests

from contracts.routing import ROUTES, DeploymentRoute, EndpointRoute
from tests.dataplane.conftest import ROOT, SLOW, free_port

# A Redis db of the data-plane tests' own: a running stack rebuilds its routing table whole.
FEED = os.environ.get("WEIR_DATAPLANE_TEST_REDIS", "redis://127.0.0.1:6379/13")
KEY = "streaming-key"
MB = 1024 * 1024


class Counting(socketserver.BaseRequestHandler):
    """Reads each request's body (Content-Length or chunked) without keeping it, and
    answers ``{"bytes": <count>}``; keeps the connection alive."""

    def handle(self):
        try:
            self.serve()
        except (ValueError, OSError):
            pass  # the router dropped the request (a body over its limit)

    def serve(self):
        reader = self.request.makefile("rb", buffering=256 * 1024)
        while True:
            line = reader.readline()
            if not line:
                return
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            count = 0
            if "content-length" in headers:
                left = int(headers["content-length"])
                while left:
                    data = reader.read(min(left, MB))
                    if not data:
                        return
                    count += len(data)
                    left -= len(data)
            elif "chunked" in headers.get("transfer-encoding", ""):
                while size := int(reader.readline().split(b";")[0], 16):
                    left = size
                    while left:
                        data = reader.read(min(left, MB))
                        if not data:
                            return
                        left -= len(data)
                    count += size
                    reader.readline()
                reader.readline()
            body = json.dumps({"bytes": count}).encode()
            self.request.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )


class CountingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def counting():
    server = CountingServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def entry(name: str, replicas: list[str], timeout: float = 60.0) -> EndpointRoute:
    return EndpointRoute(
        name=name,
        workspace="ws",
        auth_mode="Key",
        key_digests=(hashlib.sha256(KEY.encode()).hexdigest(),),
        traffic={"blue": 100},
        deployments={
            "blue": DeploymentRoute(
                id=f"{name}-blue",
                replicas=tuple(replicas),
                max_concurrent_requests_per_instance=16,
                request_timeout=timeout,
                max_queue_wait=5.0,
            )
        },
    )


class Router:
    """``python -m dataplane.router`` with one serving process (its pid is the one whose
    memory is read), fed from FEED."""

    def __init__(self, tmp: Path, max_body: int | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"router-{self.port}.log"
        command = [sys.executable, "-m", "dataplane.router", "--processes", "1"]
        command += ["--port", str(self.port), "--redis-url", FEED, "--access-log", "off"]
        if max_body is not None:
            command += ["--max-body", str(max_body)]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=open(self.log, "wb"),  # noqa: SIM115
            text=True,
        )
        assert self.process.stdout.readline().startswith("READY"), self.log.read_text()

    def rss(self) -> int:
        """Resident memory of the serving process, in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def routes():
    feed = redis.Redis.from_url(FEED)
    hosts = []

    def add(host: str, route: EndpointRoute) -> None:
        feed.hset(ROUTES, host, route.to_json())
        hosts.append(host)

    yield add
    if hosts:
        feed.hdel(ROUTES, *hosts)


@pytest.fixture
def router(tmp_path):
    started = []

    def start(max_body: int | None = None) -> Router:
        started.append(Router(tmp_path, max_body))
        return started[-1]

    yield start
    for router in started:
        router.stop()


def head(host: str, length: int | None, key: str | None = None, **extra) -> bytes:
    lines = ["POST /score HTTP/1.1", f"Host: {host}"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    if length is None:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {length}")
    lines += [f"{name}: {value}" for name, value in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """One response (with Content-Length) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise AssertionError(f"closed before a response: {data!r}")
        data += more
    top, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = top.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return int(status_line.split()[1]), headers, body


def closed(sock: socket.socket) -> bool:
    """Whether the peer has closed the connection (EOF or reset)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def refused_upload(url_port: int, host: str, length: int, first: int) -> int:
    """Send the head of a ``length``-byte anonymous POST and ``first`` bytes of its body,
    expect 401 and a closed connection, then try to send the rest; how many body bytes
    could be sent in all."""
    chunk = b"x" * MB
    sent = 0
    with socket.create_connection(("127.0.0.1", url_port)) as sock:
        sock.sendall(head(host, length))
        try:
            while sent < first:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused while these were being sent
        status, headers, body = read_response(sock)
        assert status == 401, body
        assert headers["connection"] == "close"
        assert json.loads(body) == {"message": "The request is not authorized."}
        assert closed(sock)
        try:
            while sent < length:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
    return sent


def test_an_anonymous_upload_is_refused_before_its_body_is_read(router, routes, counting):
    routes("anon.ws.localhost", entry("anon", [counting]))
    served = router()
    size = 50 * MB
    sent = refused_upload(served.port, "anon.ws.localhost", size, MB)
    # The connection was closed after the head and about 1 MB: the rest could not follow.
    assert sent < size / 2, sent
    # An unknown endpoint is answered from the headers too.
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(head("nope.ws.localhost", size, KEY) + b"x" * MB)
        status, headers, body = read_response(sock)
        assert status == 404 and headers["connection"] == "close"
        assert closed(sock)


def test_a_1gb_upload_streams_through_in_bounded_memory(router, routes, counting):
    routes("big.ws.localhost", entry("big", [counting]))
    served = router(max_body=2 * 1024 * MB)
    auth = {"Host": "big.ws.localhost", "Authorization": f"Bearer {KEY}"}
    assert requests.post(f"{served.url}/score", b"{}", headers=auth).json() == {"bytes": 2}
    baseline = served.rss()
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], served.rss())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    size = 1024 * MB
    chunk = b"x" * MB
    try:
        with socket.create_connection(("127.0.0.1", served.port)) as sock:
            sock.sendall(head("big.ws.localhost", size, KEY))
            for _ in range(size // MB):
                sock.sendall(chunk)
            status, _, body = read_response(sock)
    finally:
        done.set()
        sampler.join()
    assert status == 200 and json.loads(body) == {"bytes": size}
    growth = peak[0] - baseline
    print(f"router RSS {baseline / MB:.1f} MB, peak {peak[0] / MB:.1f} MB during 1 GB")
    assert growth < 50 * MB, growth


def test_chunked_uploads_stream_and_are_counted_against_the_limit(router, routes, counting):
    routes("chunked.ws.localhost", entry("chunked", [counting]))
    served = router(max_body=8 * MB)
    auth = {"Host": "chunked.ws.localhost", "Authorization": f"Bearer {KEY}"}

    def chunks(count: int, size: int = 64 * 1024):
        for _ in range(count):
            yield b"y" * size

    small = requests.post(f"{served.url}/score", chunks(4), headers=auth)  # kept whole
    assert small.status_code == 200 and small.json() == {"bytes": 4 * 64 * 1024}
    large = requests.post(f"{served.url}/score", chunks(96), headers=auth)  # streamed
    assert large.status_code == 200 and large.json() == {"bytes": 96 * 64 * 1024}

    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(head("chunked.ws.localhost", None, KEY))
        piece = b"%x\r\n%s\r\n" % (MB, b"z" * MB)
        try:
            for _ in range(16):
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, headers, body = read_response(sock)
    assert status == 413 and "larger than 8388608 bytes" in json.loads(body)["message"]


def test_a_body_over_the_limit_is_refused_from_its_content_length(router, routes, counting):
    routes("limit.ws.localhost", entry("limit", [counting]))
    served = router(max_body=MB)
    auth = {"Host": "limit.ws.localhost", "Authorization": f"Bearer {KEY}"}
    assert requests.post(f"{served.url}/score", b"a" * MB, headers=auth).json() == {"bytes": MB}
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(head("limit.ws.localhost", MB + 1, KEY))
        status, headers, body = read_response(sock)  # no byte of the body was sent
        assert status == 413 and headers["connection"] == "close"
        assert json.loads(body) == {"message": f"The request body is larger than {MB} bytes."}
        assert closed(sock)


def test_anonymous_bursts_leave_the_routers_memory_where_it_was(router, routes, counting):
    routes("burst.ws.localhost", entry("burst", [counting]))
    served = router()
    auth = {"Host": "burst.ws.localhost", "Authorization": f"Bearer {KEY}"}
    for _ in range(20):
        assert requests.post(f"{served.url}/score", b"{}", headers=auth).status_code == 200
    baseline = served.rss()
    for _ in range(10):
        threads = [
            threading.Thread(
                target=refused_upload, args=(served.port, "burst.ws.localhost", 90 * MB, 4 * MB)
            )
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    after = served.rss()
    print(f"router RSS {baseline / MB:.1f} MB before, {after / MB:.1f} MB after 60 x 90 MB")
    assert after < baseline * 1.10, (baseline, after)
    assert requests.post(f"{served.url}/score", b"{}", headers=auth).status_code == 200


def test_a_replica_killed_under_load_fails_no_request(router, routes, replica, tmp_path):
    script = tmp_path / "score.py"
    script.write_text(SLOW)
    first, second = replica(script, tmp_path, 4), replica(script, tmp_path, 4)
    victim = f"127.0.0.1:{first.port}"
    routes("killed.ws.localhost", entry("killed", [victim, f"127.0.0.1:{second.port}"]))
    served = router()
    auth = {"Host": "killed.ws.localhost", "Authorization": f"Bearer {KEY}"}
    statuses: list[int] = []
    stop = threading.Event()

    def load():
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    answer = session.post(f"{served.url}/score", "sleep:0.02", headers=auth)
                    statuses.append(answer.status_code)
                except requests.ConnectionError:
                    statuses.append(0)

    clients = [threading.Thread(target=load) for _ in range(6)]
    for client in clients:
        client.start()
    time.sleep(1.0)
    started = time.monotonic()
    first.process.kill()
    time.sleep(2.0)
    stop.set()
    for client in clients:
        client.join()
    seconds = time.monotonic() - started
    assert len(statuses) > 100
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    warnings = [line for line in served.log.read_text().splitlines() if victim in line]
    print(f"{len(statuses)} requests, {len(warnings)} warning lines about {victim}")
    # At most one line a second about the replica, each with a count.
    assert 1 <= len(warnings) <= seconds + 2, warnings
    assert all("times in" in line for line in warnings)


def test_a_head_request_is_answered_without_waiting_for_a_body(router, routes, replica, tmp_path):
    """An answer to HEAD carries the GET's content-length and no body: the router passes
    it on at once and goes on serving on the same connection."""
    script = tmp_path / "score.py"
    script.write_text(SLOW)
    served_by = replica(script, tmp_path)
    routes("head.ws.localhost", entry("head", [f"127.0.0.1:{served_by.port}"], timeout=30))
    served = router()
    auth = {"Host": "head.ws.localhost", "Authorization": f"Bearer {KEY}"}
    with requests.Session() as session:
        for _ in range(2):
            answer = session.head(f"{served.url}/", headers=auth, timeout=10)
            assert answer.status_code == 200
            assert answer.headers["content-length"] == str(len(b"Healthy"))
            assert answer.headers["azureml-model-deployment"] == "blue"
        scored = session.post(f"{served.url}/score", "sleep:0", headers=auth, timeout=10)
        assert scored.status_code == 200
