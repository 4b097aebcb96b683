"""nginx and gunicorn as one server: what ``manage.py serve`` turns into once it has written
the configuration. It starts gunicorn, then nginx once gunicorn listens, copies nginx's
access log to stdout, and stops both when told to (SIGTERM, SIGINT, SIGHUP) or when either
exits.

Standard library only, and run as a script: it stays resident for the server's lifetime, so
it does not carry Django.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, help="gunicorn's unix socket")
    parser.add_argument("--nginx-config", required=True)
    parser.add_argument("--banner", default="", help="printed once nginx is started")
    parser.add_argument("gunicorn", nargs=argparse.REMAINDER, help="-- the gunicorn command")
    args = parser.parse_args(argv)
    command = args.gunicorn[1:] if args.gunicorn[:1] == ["--"] else args.gunicorn
    socket, config = Path(args.socket), Path(args.nginx_config)
    try:
        gunicorn = _start(command)
        try:
            _wait_for_socket(socket, gunicorn)
            front = _start(
                ["nginx", "-p", str(config.parent), "-c", str(config), "-e", "stderr"],
                stdout=subprocess.PIPE,
            )
        except BaseException:
            _stop(gunicorn, signal.SIGTERM, timeout=35)
            raise
        print(args.banner, flush=True)
        code = _supervise(front, gunicorn)
    except _StartFailed as failure:
        print(f"serve: {failure}", file=sys.stderr)
        code = 1
    finally:
        # The private directory manage.py serve made for the socket.
        shutil.rmtree(socket.parent, ignore_errors=True)
    sys.exit(code)


class _StartFailed(Exception):
    pass


def _start(command: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(command, preexec_fn=_die_with_parent, **kwargs)


def _die_with_parent() -> None:
    # Should this process be killed outright, nginx and gunicorn get SIGTERM instead of
    # holding the port for the next start.
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _wait_for_socket(path: Path, gunicorn: subprocess.Popen, timeout: float = 60) -> None:
    """nginx starts once gunicorn listens, so nothing is answered 502 while it boots: a
    connection made before its workers are up waits in the socket's backlog."""
    deadline = time.monotonic() + timeout
    while not path.is_socket():
        if gunicorn.poll() is not None:
            raise _StartFailed(f"gunicorn exited with {gunicorn.returncode} while starting")
        if time.monotonic() > deadline:
            raise _StartFailed(f"gunicorn did not listen on {path} within {timeout:.0f}s")
        time.sleep(0.05)


def _supervise(front: subprocess.Popen, gunicorn: subprocess.Popen) -> int:
    """Until SIGTERM, SIGINT or SIGHUP, or until nginx or gunicorn exits on its own; then stop
    both, nginx first so that the requests it holds are answered. 0 when asked to stop.

    nginx's access log comes through a pipe and goes out on this process's stdout: nginx
    reopens /dev/stdout by name, which fails on a socket (journald) and writes over a file
    that gunicorn's stdout shares at another offset."""
    asked: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: asked.append(signum))
    log = front.stdout.fileno()
    os.set_blocking(log, False)
    while not asked and front.poll() is None and gunicorn.poll() is None:
        select.select([log], [], [], 0.2)
        _copy(log)
    for name, process in (("nginx", front), ("gunicorn", gunicorn)):
        if not asked and process.returncode is not None:
            print(f"serve: {name} exited with {process.returncode}", file=sys.stderr)
    # SIGQUIT: nginx stops listening, closes idle connections and finishes the requests in
    # flight (at most worker_shutdown_timeout); SIGTERM: gunicorn's graceful stop.
    _stop(front, signal.SIGQUIT, timeout=30, log=log)
    _stop(gunicorn, signal.SIGTERM, timeout=35)
    return 0 if asked else 1


def _copy(fd: int) -> None:
    """Whatever the pipe holds, to stdout."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            return
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()


def _stop(process: subprocess.Popen, signum: int, timeout: float, log: int | None = None):
    """Signal the process and wait for it (killing it after ``timeout``), copying its log
    meanwhile so that it never waits on a full pipe."""
    if process.poll() is None:
        process.send_signal(signum)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if log is None:
            time.sleep(0.1)
        else:
            select.select([log], [], [], 0.1)
            _copy(log)
    if process.poll() is None:
        process.kill()
        process.wait()
    if log is not None:
        _copy(log)


if __name__ == "__main__":
    main()
