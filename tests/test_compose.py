"""docker-compose.yml: valid for docker-compose (no engine needed to check it), every Weir
service runs the command bin/start runs and has a healthcheck, with settings the README
documents."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WEIR_SERVICES = {"migrate", "web", "blob", "worker", "agent", "router"}
# Where a command's own words end and its settings (addresses, paths) begin.
SETTINGS_FLAGS = {"--bind", "--port", "--host", "--schedule", "-Q", "--concurrency"}


def compose_config() -> dict:
    if not shutil.which("docker-compose"):
        subprocess.run(["apt-get", "install", "-y", "-q", "docker-compose"], check=True)
    done = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_file_is_valid_and_runs_what_bin_start_runs():
    services = compose_config()["services"]
    assert set(services) == {"postgres", "redis", "registry", *WEIR_SERVICES}
    start = re.sub(r"\\\n\s*", "", (ROOT / "bin" / "start").read_text())
    start = " ".join(start.split())
    for name in WEIR_SERVICES:
        command = services[name]["command"]
        words = []
        for word in command:
            if word in SETTINGS_FLAGS:
                break
            words.append(word)
        assert " ".join(words) in start, f"{name}: {' '.join(words)!r} is not what bin/start runs"
        if name != "migrate":
            assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ("postgres", "redis", "registry"):
        assert services[name]["healthcheck"]["test"]


def test_compose_settings_are_the_documented_ones():
    readme = (ROOT / "README.md").read_text()
    environment = compose_config()["services"]["web"]["environment"]
    for variable in environment:
        assert f"`{variable}`" in readme, f"{variable} is not in the README's settings"
