"""The nginx configuration ``manage.py serve`` writes: nginx accepts it for both servers, and
what nginx answers itself is the server's own error body."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from xml.etree import ElementTree

import pytest

from controlplane.core.management import nginx
from controlplane.core.management.commands.serve import ensure_certificate


def site(tmp_path, blob: bool) -> nginx.Site:
    certificate, key = tmp_path / "server.crt", tmp_path / "server.key"
    ensure_certificate(certificate, key)
    return nginx.Site(
        server="blob" if blob else "api",
        listen="127.0.0.1:8443",  # nginx -t binds nothing
        socket=tmp_path / "gunicorn.sock",
        state=tmp_path,
        certificate=certificate,
        key=key,
        max_body=1024,
        upstream_timeout=60,
        blob=blob,
        user="root root" if os.geteuid() == 0 else None,
    )


def answers(text: str) -> dict[int, tuple[int, str]]:
    """nginx's status for each case -> (the status sent, the body)."""
    pages = re.findall(r"location = /\.weir/error/(\d+) \{.*?return (\d+) '(.*?)';", text, re.S)
    return {int(case): (int(status), body) for case, status, body in pages}


@pytest.mark.parametrize("blob", [False, True], ids=["api", "blob"])
def test_nginx_accepts_the_configuration(tmp_path, blob):
    assert shutil.which("nginx"), "nginx is not installed: bin/test installs it"
    config = tmp_path / "nginx.conf"
    config.write_text(nginx.render(site(tmp_path, blob)))
    checked = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(config), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


def test_the_api_refuses_in_arm_error_bodies(tmp_path):
    refused = answers(nginx.render(site(tmp_path, blob=False)))
    assert set(refused) >= {400, 413, 414, 494, 497, 502, 504}
    assert refused[494][0] == refused[497][0] == 400
    for _, body in refused.values():
        error = json.loads(body)["error"]
        assert set(error) == {"code", "message", "target", "details", "additionalInfo"}
    assert json.loads(refused[413][1])["error"]["code"] == "RequestContentTooLarge"
    assert "1024 bytes" in json.loads(refused[413][1])["error"]["message"]


def test_the_blob_store_refuses_in_azure_storage_error_bodies(tmp_path):
    text = nginx.render(site(tmp_path, blob=True))
    refused = answers(text)
    for _, body in refused.values():
        error = ElementTree.fromstring(body)
        assert error.tag == "Error" and error.findtext("Code") and error.findtext("Message")
    assert ElementTree.fromstring(refused[413][1]).findtext("Code") == "RequestBodyTooLarge"
    assert "add_header x-ms-error-code RequestBodyTooLarge always;" in text
    assert "underscores_in_headers on;" in text


def test_no_dollar_reaches_an_nginx_string():
    # nginx would read it as a variable.
    with pytest.raises(ValueError):
        nginx._quoted("costs $5")
    assert nginx._quoted("it's") == "'it\\'s'"
