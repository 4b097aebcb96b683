"""A newcomer's first minutes: on a clean clone, the README's first command, as written,
brings Weir up with a configured CLI; a first endpoint is created with Azure's sample file;
stopping it stops everything it started.

(The README's second command, bin/test, is what CI runs on a clean clone: this suite.)"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import psycopg
import pytest
import redis

from tests.system.conftest import ROOT, free_port

pytestmark = pytest.mark.system

DATABASE = "weir_newcomer"
REDIS_DB = 13


def readme_commands() -> list[str]:
    """The commands of the README's 'Set up' section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def processes_under(directory) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    command = handle.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(directory) in command:
                found.append(command)
    return found


def test_the_readme_first_command_on_a_clean_clone(tmp_path):
    commands = readme_commands()
    assert commands == ["bin/start", "bin/test"], commands
    clone = tmp_path / "weir"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)

    base_db = os.environ.get("DATABASE_URL", "postgres://localhost/weir")
    with psycopg.connect(base_db.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    api, blob, scoring = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": base_db.rsplit("/", 1)[0] + f"/{DATABASE}",
        "CELERY_BROKER_URL": broker,
        "WEIR_DATA_DIR": str(tmp_path / "data"),
        "WEIR_BIND": f"127.0.0.1:{api}",
        "WEIR_BLOB_BIND": f"127.0.0.1:{blob}",
        "WEIR_BLOB_URL": f"https://localhost:{blob}",
        "WEIR_SCORING_PORT": str(scoring),
        "WEIR_CLI_CONFIG": str(tmp_path / "cli-config"),
        "PATH": os.environ["PATH"],
    }
    env.pop("VIRTUAL_ENV", None)
    log = open(tmp_path / "start.log", "wb")  # noqa: SIM115
    started = time.monotonic()
    weir_start = subprocess.Popen(
        ["bash", "-c", commands[0]],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    weir = [str(clone / ".venv" / "bin" / "weir"), "-g", "rg1"]

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [weir[0], *args, *weir[1:]],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert weir_start.poll() is None, (tmp_path / "start.log").read_text()[-3000:]
            if (clone / ".venv" / "bin" / "weir").exists() and cli(
                "workspace", "list", "-o", "none"
            ).returncode == 0:
                break
            time.sleep(1)
        else:
            raise AssertionError("Weir did not come up: " + (tmp_path / "start.log").read_text())
        print(f"bin/start on a clean clone: serving after {time.monotonic() - started:.0f}s")

        assert cli("workspace", "create", "-n", "ws1").returncode == 0
        sample = "examples/online/managed/sample/endpoint.yml"
        created = cli(
            "online-endpoint",
            "create",
            "-f",
            sample,
            "-w",
            "ws1",
            "--query",
            "provisioning_state",
            "-o",
            "tsv",
        )
        assert created.returncode == 0, created.stderr
        assert created.stdout.strip() == "Succeeded"
        uri = cli(
            "online-endpoint",
            "show",
            "-n",
            "my-endpoint",
            "-w",
            "ws1",
            "--query",
            "scoring_uri",
            "-o",
            "tsv",
        ).stdout.strip()
        assert uri == f"http://my-endpoint.ws1.localhost:{scoring}/score"
    finally:
        os.killpg(weir_start.pid, signal.SIGINT)  # Ctrl-C reaches the whole group
        weir_start.wait(timeout=60)
        log.close()
    deadline = time.monotonic() + 30
    while processes_under(clone) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_under(clone) == []
